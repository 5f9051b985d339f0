"""Primitives by family; importing this package fills the registry."""

from . import (arithmetic, elementwise, linalg, numpy_linalg, reductions,  # noqa: F401
               shape, special)
from . import decompositions, fft, statistics  # noqa: F401,E402
