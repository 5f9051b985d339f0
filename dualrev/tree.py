"""Nested structures of arrays: tuples, lists and dicts of leaves.

A model's parameters (a dict of weight arrays) are flattened to a list of
leaves and rebuilt in the same structure; dict keys are taken in sorted
order so that flattening is deterministic.
"""

import numpy as np

_LEAF = None


def flatten(tree):
    """``(leaves, treedef)``: the leaves of ``tree`` in order and its shape."""
    leaves = []
    treedef = _flatten(tree, leaves)
    return leaves, treedef


def _flatten(tree, leaves):
    if isinstance(tree, (tuple, list)):
        return (type(tree), [_flatten(t, leaves) for t in tree])
    if isinstance(tree, dict):
        keys = sorted(tree)
        return (dict, keys, [_flatten(tree[k], leaves) for k in keys])
    leaves.append(tree)
    return _LEAF


def unflatten(treedef, leaves):
    """Rebuild the structure ``treedef`` from ``leaves`` (any iterable)."""
    return _unflatten(treedef, iter(leaves))


def _unflatten(treedef, leaves):
    if treedef is _LEAF:
        return next(leaves)
    if treedef[0] is dict:
        _, keys, children = treedef
        return {k: _unflatten(c, leaves) for k, c in zip(keys, children)}
    kind, children = treedef
    items = [_unflatten(c, leaves) for c in children]
    if kind is list:
        return items
    if kind is tuple:
        return tuple(items)
    return kind(*items)  # a namedtuple


def tree_map(f, tree, *rest):
    """Apply ``f`` leaf by leaf to ``tree`` and trees of the same structure."""
    leaves, treedef = flatten(tree)
    others = [flatten(r)[0] for r in rest]
    return unflatten(treedef, [f(*xs) for xs in zip(leaves, *others)])


def ravel_pytree(tree):
    """Flatten a nested structure of arrays into one float64 vector.

    Parameters
    ----------
    tree : array, float or nested tuple/list/dict of them

    Returns
    -------
    flat : ndarray, shape (n,)
        The leaves raveled and concatenated in :func:`flatten` order.
    unravel : callable
        ``unravel(vector)`` rebuilds a structure like ``tree`` from a vector
        of length ``n``; it slices and reshapes with NumPy calls, so it also
        accepts traced vectors.

    See Also
    --------
    flatten, unflatten

    Examples
    --------
    >>> import numpy as np
    >>> flat, unravel = ravel_pytree({"w": np.ones((2, 2)), "b": 3.0})
    >>> flat
    array([3., 1., 1., 1., 1.])
    >>> unravel(flat)["w"].shape
    (2, 2)
    """
    leaves, treedef = flatten(tree)
    shapes = [np.shape(leaf) for leaf in leaves]
    bounds = np.cumsum([0] + [int(np.prod(s)) for s in shapes]).tolist()
    flat = np.concatenate([np.ravel(np.asarray(leaf, np.float64)) for leaf in leaves]
                          or [np.zeros(0)])

    def unravel(vector):
        # a scalar leaf comes back as a scalar (vector[a]), not a 0-d array
        return unflatten(treedef, [np.reshape(vector[a:b], s) if s else vector[a]
                                   for a, b, s in zip(bounds, bounds[1:], shapes)])
    return flat, unravel


def flat_vector(tree, size=None):
    """The leaves of ``tree`` as one float64 vector (of length ``size`` if given).

    Examples
    --------
    >>> flat_vector({"w": np.ones((2, 2)), "b": 3.0})
    array([3., 1., 1., 1., 1.])
    """
    flat = np.asarray(ravel_pytree(tree)[0], np.float64)
    return flat if size is None else flat.reshape(size)


def split_flat(vector, shapes, batch=()):
    """``vector``'s last axis cut into consecutive pieces of ``shapes``, each
    reshaped (after the leading ``batch`` axes): a flat vector back to leaves.

    Examples
    --------
    >>> [a.shape for a in split_flat(np.arange(7.0), [(2, 2), (3,)])]
    [(2, 2), (3,)]
    """
    leaves, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        leaves.append(vector[..., start:start + size].reshape(tuple(batch) + tuple(shape)))
        start += size
    return leaves
