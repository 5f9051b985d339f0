"""Primitives by family; importing this package fills the registry and then
gives traced values their operators and methods (:mod:`.methods`).

Names: a primitive (an :class:`~dualrev.registry.Op`) is named after its
registry name (``matmul``, ``reshape``, ``solve``; ``sum_`` where a builtin
would be shadowed), and the function with NumPy's signature that is
registered for the NumPy callable and calls it is ``np_<name>``
(``np_matmul``, ``np_reshape``, ``np_solve``). ``logsumexp`` is the one
exception: the public :func:`dualrev.logsumexp` has SciPy's signature, and
its primitive is ``logsumexp_op``.
"""

from . import (arithmetic, elementwise, linalg, numpy_linalg, reductions,  # noqa: F401
               shape, special)
from . import decompositions, fft, statistics  # noqa: F401,E402
from . import methods  # noqa: F401,E402  (last: it calls the ops above)
