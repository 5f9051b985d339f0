"""``dualrev.compile``: record once, run many.

The first call at a given argument structure, shapes and dtypes runs the
function once under a :class:`~dualrev.staging.StagingTrace`, which records
every primitive executed (the user's, and those that rules, sweeps and
nested transformations execute) into a program; passes simplify it and a
backend turns it into something to run. Later calls run that, not the
Python. Guards keep it honest: a replay that meets a branch the staging run
did not take stages again and keeps both programs.
"""

import threading
import time
import warnings

import numpy as np

from . import passes
from .chunked import lazy_program
from .codegen import Miss, defined, generated
from .lazy import is_lazy
from .registry import Tracer
from .staging import Program, StagingTrace, Var
from .tree import flatten, unflatten

__all__ = ["compile", "Compiled", "CompiledProgram", "VerificationError"]

_DYNAMIC = (np.ndarray, np.generic, float, int, complex, bool)


class Fixed:
    """A compiled function with its non-varying arguments fixed (see
    :meth:`Compiled.fix`)."""

    def __init__(self, compiled, args, kwargs):
        self.compiled, self.args, self.kwargs = compiled, args, kwargs
        self.residuals = {}  # SplitProgram -> what its fixed part computed
        self._parts = None  # signature parts of the fixed arguments, made once
        self._last = None  # (aval of a lone varying array, its program, residuals)

    def _split(self, varying):
        """``Compiled._split`` of the full call, the fixed arguments' parts reused."""
        args = self._full_args(varying)
        compiled = self.compiled
        if self._parts is None:
            self._parts = {i: compiled._part(i, a) for i, a in enumerate(args)
                           if i not in compiled.varying_argnums}
        return args, compiled._split(args, self.kwargs, self._parts)

    def _full_args(self, varying):
        it = iter(varying)
        fixed = iter(self.args)
        n = len(self.args) + len(varying)
        return [next(it) if i in self.compiled.varying_argnums else next(fixed)
                for i in range(n)]

    def fixed_values(self, *example):
        """The outputs that depend on the fixed arguments only, in the output
        structure (None for the others): run without the varying arguments,
        except to stage a program the first time (with ``example``, values
        of the varying arguments)."""
        compiled = self.compiled
        _, (signature, dynamic, positions, rebuild) = self._split(example)
        for entry in compiled.cache.get(signature, ()):
            residuals = self._residuals(entry, dynamic, positions)
            if residuals is not None:
                return unflatten(entry.out_def, [
                    None if k is _VARYING else residuals[k] if isinstance(k, int)
                    else k.value for k in entry.fixed_outputs])
        self(*example)  # stages a program, then read it as above
        return self.fixed_values(*example)

    def _residuals(self, entry, dynamic, positions):
        """What ``entry``'s fixed part computes at this point (None on a guard miss)."""
        residuals = self.residuals.get(entry)
        if residuals is None:
            residuals = entry.run_fixed(*(x for k, x in enumerate(dynamic)
                                          if k not in positions))
            if residuals.__class__ is Miss:
                return None
            self.residuals[entry] = residuals
        return residuals

    def __call__(self, *varying):
        compiled = self.compiled
        last = self._last
        if last is not None and len(varying) == 1 and varying[0].__class__ is np.ndarray \
                and (varying[0].shape, varying[0].dtype) == last[0] \
                and compiled.replays >= compiled.verify:
            # The hot path of an operator: one array, the program of the last call.
            out = last[1].run_varying(*last[2], varying[0])
            if out.__class__ is not Miss:
                last[1].hits += 1
                compiled.replays += 1
                return unflatten(last[1].out_def, out)
        args, (signature, dynamic, positions, rebuild) = self._split(varying)
        if signature is None:
            return compiled.fn(*args, **self.kwargs)
        moving = [dynamic[k] for k in positions]
        miss = None
        for entry in compiled.cache.get(signature, ()):
            residuals = self._residuals(entry, dynamic, positions)
            if residuals is None:
                continue
            out = entry.run_varying(*residuals, *moving)
            if out.__class__ is not Miss:
                if len(moving) == 1 and moving[0].__class__ is np.ndarray:
                    self._last = ((moving[0].shape, moving[0].dtype), entry, residuals)
                return compiled._replayed(entry, out, args, self.kwargs)
            miss = out
        return compiled._stage(signature, dynamic, positions, rebuild, miss)


class VerificationError(AssertionError):
    """A replay and an eager run of the same call disagree (``verify=``)."""


class CompiledProgram:
    """One staged program and the function that runs it.

    Attributes
    ----------
    program : Program
        The optimized program (equations of registry ops, guards).
    source : str
        The generated Python source of the replay function.
    staging_seconds : float
        Time taken to stage, optimize and generate the program.
    equations_before : int
        Number of equations staged, before the passes ran.
    backend : str
        The backend that runs it: ``"numba"`` or ``"default"`` (also after a
        fallback from numba).
    kernels : list of str
        The source of each fused numba kernel (empty for the default backend).
    compile_seconds : float
        Time numba took to compile (or load from its cache) the kernels, not
        included in ``staging_seconds``.
    """

    def __init__(self, program, out_def, staging_seconds, equations_before,
                 backend="default"):
        self.program = program
        self.out_def = out_def
        self.equations_before = equations_before
        self.backend = backend
        self.kernels = []
        self.compile_seconds = 0.0
        self.source, self.run = self._build(program)
        self.staging_seconds = staging_seconds
        self.hits = 0

    def __repr__(self):
        return f"<CompiledProgram: {self.program!r}>"


    def _build(self, program):
        """(source, function) of ``program`` by this program's backend; a
        numba kernel that does not compile falls back to the default backend
        with a warning naming the op."""
        if self.backend == "numba":
            from .numba_backend import NumbaUnsupported, generate_numba
            try:
                source, namespace, kernels, seconds = generate_numba(program)
            except NumbaUnsupported as error:
                warnings.warn(f"dualrev.compile(backend='numba'): numba cannot compile op "
                              f"{error.op!r} ({error}); this program runs on the default "
                              "backend", RuntimeWarning, stacklevel=5)
                self.backend = "default"
            else:
                self.kernels += kernels
                self.compile_seconds += seconds
                return source, defined(source, namespace)
        return generated(program)


_VARYING = object()  # an output that depends on the varying inputs


class SplitProgram(CompiledProgram):
    """A program split in its varying inputs (:func:`dualrev.passes.split`):
    ``run_fixed`` computes what the fixed inputs alone determine (once per
    :meth:`Compiled.fix`), ``run_varying`` the rest at each call."""

    def __init__(self, program, out_def, staging_seconds, equations_before, varying,
                 backend="default"):
        super().__init__(program, out_def, staging_seconds, equations_before, backend)
        fixed, moving = passes.split(program, varying)
        self.fixed_source, self.run_fixed = self._build(fixed)
        self.varying_source, self.run_varying = self._build(moving)
        self.varying_equations = len(moving.equations)
        # Where each output comes from when it depends on fixed inputs only:
        # its position among the fixed part's outputs, or its constant.
        position = {r: k for k, r in enumerate(fixed.outputs)}
        self.fixed_outputs = [position.get(r, _VARYING) if isinstance(r, Var) else r
                              for r in program.outputs]


class Compiled:
    """A function staged into programs on first use; see :func:`compile`."""

    def __init__(self, fn, static_argnums, varying_argnums, verify, max_programs,
                 warn_after, backend="default"):
        self.fn = fn
        self.backend = backend
        self.static_argnums = frozenset(static_argnums)
        self.varying_argnums = frozenset(varying_argnums)
        self.verify = verify
        self.max_programs = max_programs
        self.warn_after = warn_after
        self.cache = {}  # signature -> list of CompiledProgram, most recent first
        self.restages = 0
        self.replays = 0
        self._lock = threading.Lock()
        self._warned = False
        self.__name__ = f"compile({getattr(fn, '__name__', 'f')})"
        self.__doc__ = getattr(fn, "__doc__", None)

    @property
    def programs(self):
        """Every program staged so far (all signatures, all guard outcomes)."""
        return [p for ps in self.cache.values() for p in ps]

    def _part(self, i, arg):
        """What argument ``i`` (None: the keyword arguments) adds to a call's
        signature: ``(key, dynamic leaves, leaves, treedef)``, or None when
        it is traced by another transformation. A static argument is all key."""
        if i in self.static_argnums:
            return ("static", _hashable(arg, i)), (), None, None
        if arg.__class__ is np.ndarray:  # the common case, without flattening
            return (np.ndarray, arg.shape, arg.dtype), (arg,), None, None
        leaves, treedef = flatten(arg)
        kinds, dynamic = [], []
        for leaf in leaves:
            if isinstance(leaf, Tracer):
                return None
            if is_lazy(leaf):  # data: a program per shape and chunks
                kinds.append((type(leaf), leaf.shape, leaf.dtype, leaf.chunks))
                dynamic.append(leaf)
            elif isinstance(leaf, _DYNAMIC):
                if isinstance(leaf, np.matrix):
                    raise TypeError("np.matrix inputs are not supported: pass "
                                    "np.asarray(m)")
                kinds.append((type(leaf), getattr(leaf, "shape", ()),
                              getattr(leaf, "dtype", None)))
                dynamic.append(leaf)
            else:
                kinds.append(("static", _hashable(leaf, "a leaf")))
        return (treedef_key(treedef), tuple(kinds)), tuple(dynamic), leaves, treedef

    def _split(self, args, kwargs, parts=None):
        """(signature, dynamic leaves, the positions of the varying arguments'
        leaves among them, a rebuild function) of one call; signature None
        when an argument is traced by another transformation. ``parts`` may
        hold the :meth:`_part` of some arguments already."""
        parts = dict(parts or ())
        for i, arg in enumerate(args):
            if i not in parts:
                parts[i] = self._part(i, arg)
        parts[None] = self._part(None, kwargs) if kwargs else (None, (), None, None)
        order = list(range(len(args))) + [None]
        if any(parts[i] is None for i in order):
            return None, None, None, None
        signature = tuple(parts[i][0] for i in order)
        dynamic, varying = [], []
        for i in order:
            if i in self.varying_argnums:
                varying.extend(range(len(dynamic), len(dynamic) + len(parts[i][1])))
            dynamic.extend(parts[i][1])

        def rebuild(new_dynamic):
            it = iter(new_dynamic)
            rebuilt = []
            for i in order:
                key, dyn, leaves, treedef = parts[i]
                if i in self.static_argnums:
                    rebuilt.append(args[i])
                elif treedef is None:  # a bare array, or no keyword arguments
                    rebuilt.append(next(it) if dyn else {})
                else:
                    rebuilt.append(unflatten(treedef, [
                        next(it) if isinstance(leaf, _DYNAMIC) or is_lazy(leaf) else leaf
                        for leaf in leaves]))
            return rebuilt[:-1], rebuilt[-1]
        return signature, dynamic, tuple(varying), rebuild

    def __call__(self, *args, **kwargs):
        signature, dynamic, varying, rebuild = self._split(args, kwargs)
        if signature is None:  # called inside another transformation: run it
            return self.fn(*args, **kwargs)
        entries = self.cache.get(signature, ())
        miss = None
        for entry in entries:
            out = entry.run(*dynamic)
            if out.__class__ is not Miss:
                return self._replayed(entry, out, args, kwargs)
            miss = out
        return self._stage(signature, dynamic, varying, rebuild, miss)

    def _replayed(self, entry, out, args, kwargs):
        entry.hits += 1
        self.replays += 1
        result = unflatten(entry.out_def, out)
        if self.verify and self.replays <= self.verify:
            self._check(result, args, kwargs)
        return result

    def fix(self, *args, **kwargs):
        """A function of the varying arguments, the others fixed at ``args``.

        ``args`` are the positional arguments that are not in
        ``varying_argnums``, in order; the returned function takes the
        varying ones, in order. What the fixed arguments alone determine runs
        once per program, at the first call; each call runs the rest. An
        HVP operator is ``compile(lambda x, v: hvp(f, x, v),
        varying_argnums=1).fix(x)``.
        """
        if not self.varying_argnums:
            raise TypeError("fix() needs compile(..., varying_argnums=...)")
        return Fixed(self, args, kwargs)

    def _stage(self, signature, dynamic, varying, rebuild, miss):
        start = time.perf_counter()
        trace = StagingTrace()
        staged = [trace.new_input(x) for x in dynamic]
        call_args, call_kwargs = rebuild(staged)
        out = self.fn(*call_args, **call_kwargs)
        out_leaves, out_def = flatten(out)
        refs = trace.program(out_leaves)
        program = Program([s.var for s in staged], trace.body, refs)
        before = len(program.equations)
        program = passes.optimize(program)
        seconds = time.perf_counter() - start
        if any(is_lazy(x) for x in dynamic):  # dask data: see dualrev.chunked
            entry = lazy_program(program, out_def, seconds, before, dynamic)
            entry.split_at(varying, _VARYING)
            # the staging run only built a graph: the program computes
            result = unflatten(out_def, entry.run(*dynamic))
            return self._keep(signature, entry, miss, result)
        if self.varying_argnums:
            entry = SplitProgram(program, out_def, seconds, before, varying, self.backend)
        else:
            entry = CompiledProgram(program, out_def, seconds, before, self.backend)
        return self._keep(signature, entry, miss, unflatten(
            out_def, [o.value if isinstance(o, Tracer) else o for o in out_leaves]))

    def _keep(self, signature, entry, miss, result):
        """Keep the new program ``entry``; warn on repeated restaging."""
        with self._lock:
            entries = self.cache.setdefault(signature, [])
            entries.insert(0, entry)
            del entries[self.max_programs:]
            if miss is not None:
                self.restages += 1
                if self.restages > self.warn_after and not self._warned:
                    self._warned = True
                    guard = miss.guard
                    warnings.warn(
                        f"{self.__name__} has been staged again {self.restages} times "
                        f"because Python control flow read a traced value: "
                        f"{guard.describe()}. Each new outcome stages a new program; "
                        "make the value static (static_argnums) or use np.where",
                        RuntimeWarning, stacklevel=4)
        return result

    def _check(self, result, args, kwargs):
        eager = self.fn(*args, **kwargs)
        got, _ = flatten(result)
        want, _ = flatten(eager)
        for k, (g, w) in enumerate(zip(got, want)):
            if not np.array_equal(np.asarray(g), np.asarray(w), equal_nan=True):
                raise VerificationError(
                    f"{self.__name__}: output leaf {k} of the replay differs from the "
                    "eager result. The function reads state the program cannot see: "
                    "np.random calls, a global or closed-over value changed between "
                    "calls, or Python reading a value outside dualrev (e.g. through "
                    "a plain NumPy array made from a traced value). Compute such "
                    "values outside and pass them as arguments.")


def treedef_key(treedef):
    """A hashable form of a tree structure."""
    if treedef is None:
        return None
    if treedef[0] is dict:
        return (dict, tuple(treedef[1]), tuple(treedef_key(c) for c in treedef[2]))
    return (treedef[0], tuple(treedef_key(c) for c in treedef[1]))


def _hashable(value, where):
    try:
        hash(value)
    except TypeError:
        raise TypeError(f"dualrev.compile: static argument {where} of type "
                        f"{type(value).__name__} is not hashable; static arguments "
                        "are part of the cache key") from None
    return value


def compile(fn, *, static_argnums=(), varying_argnums=(), verify=0, max_programs=32,
            warn_after=8, backend="default"):
    """Stage ``fn`` into a program on first use and replay it afterwards.

    ``fn`` may be any function built from plain NumPy and dualrev
    transformations: ``grad(f)``, ``value_and_grad(loss)``, ``lambda x, v:
    hvp(f, x, v)``, ``jacfwd(f)`` or ``f`` itself. The first call at a given
    argument structure, shapes and dtypes runs ``fn`` once, recording every
    primitive executed (including those the derivative rules and sweeps
    execute) into a program; later calls run the program as generated NumPy
    code, without tracing. Results equal the eager ones bit for bit.

    Parameters
    ----------
    fn : callable
        The function to stage.
    static_argnums : int or sequence of int
        Positional arguments that are part of the cache key (by hash and
        equality) instead of inputs: Python values the function branches on.
    varying_argnums : int or sequence of int
        Positional arguments that change more often than the others (the
        vector of a Hessian-vector product): each program is split so that
        :meth:`Compiled.fix` runs the work the other arguments determine once.
    verify : int
        Run the first ``verify`` replays eagerly as well and raise
        :class:`VerificationError` when they disagree: a check for hidden
        state (``np.random`` inside ``fn``, a mutated global).
    max_programs : int
        Programs kept per argument signature (one per guard outcome seen).
    warn_after : int
        Warn (naming the guard) once the function has been staged again
        this many times because of guards.
    backend : {"default", "numba"}
        ``"default"`` replays generated NumPy source. ``"numba"`` (the extra
        ``dualrev[jit]``) fuses each run of elementwise equations, full sums
        and static slices into one compiled loop, and compiles a program of
        scalars into one function; the rest runs as NumPy calls between the
        kernels. Results equal the default backend's to rounding (numba's
        transcendental functions may differ from NumPy's in the last bit). A
        program numba cannot compile falls back to the default backend with
        a warning naming the op.

    Returns
    -------
    Compiled
        A callable with the signature of ``fn``; its ``programs`` attribute
        lists the staged programs (each with ``source``, ``program``,
        ``staging_seconds``).

    Notes
    -----
    Python control flow on a traced value (``if x.sum() > 0``, ``while err >
    tol``, ``int(k)``, an index computed from data) becomes a guard: a replay
    checks it where the Python read it and stages again on a different
    outcome. What runs outside dualrev's view is fixed at staging: work
    done on closed-over arrays alone, ``np.random`` draws, globals. Arrays
    closed over and met by a traced value are read by reference, so
    in-place changes to them are seen. Called with traced arguments (inside
    another transformation), a compiled function runs ``fn`` eagerly.

    See Also
    --------
    grad, hvp, hvp_operator

    Examples
    --------
    >>> import numpy as np, dualrev
    >>> df = dualrev.compile(dualrev.grad(lambda x: np.sum(np.sin(x) * x)))
    >>> x = np.array([0.5, 1.0])
    >>> bool(np.array_equal(df(x), dualrev.grad(lambda x: np.sum(np.sin(x) * x))(x)))
    True
    >>> df(x + 1.0).shape          # replays the program: no tracing
    (2,)
    >>> len(df.programs)
    1
    >>> print(df.programs[0].source)  # doctest: +ELLIPSIS
    def replay(t0):
        t1 = sin(t0)
    ...
    """
    if isinstance(static_argnums, int):
        static_argnums = (static_argnums,)
    if isinstance(varying_argnums, int):
        varying_argnums = (varying_argnums,)
    for name, nums in (("static_argnums", static_argnums),
                       ("varying_argnums", varying_argnums)):
        if any(n < 0 for n in nums):
            raise ValueError(f"dualrev.compile: {name}={nums!r}: give positions counted "
                             "from the first argument (0, 1, ...), not from the end")
    if backend not in BACKENDS:
        raise ValueError(f"dualrev.compile: unknown backend {backend!r}; "
                         f"choose one of {sorted(BACKENDS)}")
    if backend == "numba":
        from .numba_backend import require_numba
        require_numba()
    return Compiled(fn, static_argnums, varying_argnums, verify, max_programs, warn_after,
                    backend)


#: The backends of :func:`compile`.
BACKENDS = ("default", "numba")


def kept_on(fn, owner):
    """A dict kept on the function ``fn`` itself for what ``owner`` staged
    from it: a later solve of the same function replays those programs, and
    they are collected with the function (a cache keyed by the function
    would keep it alive, the programs holding it). A fresh dict when ``fn``
    takes no attributes (nothing is kept)."""
    try:
        kept = vars(fn).setdefault("__dualrev_staged__", {})
    except TypeError:
        return {}
    return kept.setdefault(owner, {})
