"""Primitives by family; importing this package fills the registry and then
gives traced values their operators and methods (:mod:`.methods`)."""

from . import (arithmetic, elementwise, linalg, numpy_linalg, reductions,  # noqa: F401
               shape, special)
from . import methods  # noqa: F401  (last: it calls the ops above)
