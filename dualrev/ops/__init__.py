"""Primitives by family; importing this package fills the registry."""

from . import arithmetic, elementwise, linalg, reductions, shape  # noqa: F401
