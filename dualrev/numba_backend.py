"""The numba backend of ``dualrev.compile``: fused loops over a staged program.

It takes the same :class:`~dualrev.staging.Program` as the default backend
(:mod:`dualrev.codegen`) and replaces each maximal run of equations whose op
declares a loop body (``Op.loop``, a scalar expression) by one call of a
compiled kernel:

- elementwise ops (broadcasting with the shapes known at staging) are
  inlined into one loop over the output;
- slices with static bounds (``getitem``) and their cotangents (``untake``,
  ``index_add``) are index arithmetic: ``x[1:]`` read at ``i`` is
  ``x[i + 1]``, its zero padding a test on ``i``, never a copy;
- a full ``sum`` accumulates in the loop that produces its input; what
  reads the sum runs in a later loop of the same kernel;
- every 0-d value is computed once, before the loops, so a scalar program
  is one straight-line kernel.

An equation whose op declares no loop body (matmul, linear algebra, sorting),
and each guard, ends a run: it runs as in the default backend, between
kernels. Kernels never contain user data: constants are arguments; the
source holds only op expressions and the static indices of the program.
Kernels are written to a cache directory and compiled with ``cache=True``,
so a later process loads them from disk.
"""

import hashlib
import importlib.util
import itertools
import math
import os
import sys
import tempfile
import time

import numpy as np

from .codegen import Generator
from .registry import OPS
from .staging import Const, Equation, Var, aval_of

__all__ = ["generate_numba", "require_numba", "NumbaUnsupported", "JIT_EXTRA"]

JIT_EXTRA = "dualrev[jit]"

#: Array values inlined into one another before a kernel stores one in a loop
#: of its own (bounds the depth of the expression a loop body computes).
MAX_INLINE_DEPTH = 64

#: Runs of 0-d equations shorter than this stay NumPy calls (a kernel call
#: costs more than a few operations on NumPy scalars).
MIN_SCALAR_RUN = 8

#: Loop nests a kernel may peel one loop into (beyond it, tests stay inside).
MAX_PEELED_LOOPS = 16

_NUMERIC = "biuf"


class NumbaUnsupported(Exception):
    """numba could not compile the kernel of ``op``."""

    def __init__(self, op, message):
        super().__init__(message)
        self.op = op


def require_numba():
    """The numba module, or an ImportError naming the extra to install."""
    try:
        import numba
    except ImportError:
        raise ImportError(
            f"dualrev.compile(..., backend='numba') needs numba: install the extra "
            f"{JIT_EXTRA} (pip install '{JIT_EXTRA}')") from None
    return numba


# ---- what may be fused ----------------------------------------------------------

def _dtype(aval):
    kind, _, dtype = aval
    return np.dtype(dtype if dtype is not None else kind)


def _aval(ref):
    return ref.aval if isinstance(ref, Var) else aval_of(ref.value)


def _numeric(ref):
    try:
        return _dtype(_aval(ref)).kind in _NUMERIC and \
            issubclass(_aval(ref)[0], (np.ndarray, np.generic, float, int, bool))
    except TypeError:
        return False


def _basic_index(index, shape):
    """The index as one ``(kind, a, b)`` per input axis: ``("int", k, None)``
    or ``("slice", start, step)`` with its length, or None when it is not a
    static index of integers, slices and one Ellipsis."""
    index = index if isinstance(index, tuple) else (index,)
    if sum(i is Ellipsis for i in index) > 1:
        return None
    if Ellipsis in index:
        k = index.index(Ellipsis)
        index = index[:k] + (slice(None),) * (len(shape) - len(index) + 1) + index[k + 1:]
    if len(index) > len(shape):
        return None
    index = index + (slice(None),) * (len(shape) - len(index))
    axes = []
    for i, n in zip(index, shape):
        if isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_)):
            if not -n <= i < n:
                return None
            axes.append(("int", int(i) % n, None, 1))
        elif isinstance(i, slice) and all(v is None or isinstance(v, (int, np.integer))
                                          for v in (i.start, i.stop, i.step)):
            start, stop, step = i.indices(n)
            axes.append(("slice", start, step, len(range(start, stop, step))))
        else:
            return None
    return axes


def _is_two(ref):
    v = ref.value if isinstance(ref, Const) else None
    return isinstance(v, (int, float, np.integer, np.floating)) and \
        not isinstance(v, (bool, np.bool_)) and v == 2


def _region_shape(axes):
    return tuple(n for kind, _, _, n in axes if kind == "slice")


#: Ops NumPy runs with SIMD code on arrays where a numba loop calls the
#: scalar libm function (numba's tanh loop takes 7 times NumPy's here): on
#: arrays of at least SIMD_MIN_SIZE elements they end a run.
SIMD_IN_NUMPY = frozenset((
    "exp", "expm1", "exp2", "log", "log1p", "log2", "log10", "sin", "cos", "tan",
    "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "arcsinh", "arccosh", "arctanh",
    "cbrt", "arctan2", "hypot", "logaddexp", "logaddexp2", "expit", "erf", "erfc"))
SIMD_MIN_SIZE = 4096


def fusible(eqn):
    """Can ``eqn`` run inside a fused kernel?"""
    op = eqn.op
    if op.loop is None or not _numeric(eqn.out) or not all(_numeric(r) for r in eqn.ins):
        return False
    if op.name in SIMD_IN_NUMPY and int(np.prod(eqn.out.aval[1])) >= SIMD_MIN_SIZE:
        return False
    if OPS.get(op.name) is not op:
        return not eqn.params
    name = op.name
    if name == "getitem":
        axes = _basic_index(eqn.params["index"], _aval(eqn.ins[0])[1])
        return axes is not None and all(k == "int" or step == 1 for k, _, step, _ in axes)
    if name in ("untake", "index_add"):
        # A region (a slice), read back as index arithmetic; one element
        # (integers only) is a scatter, cheaper as a NumPy call than a test
        # in every iteration of a loop over the whole array.
        shape = eqn.out.aval[1]
        axes = _basic_index(eqn.params["index"], shape)
        return axes is not None and any(k == "slice" for k, _, _, _ in axes) and \
            all(k == "int" or step == 1 for k, _, step, _ in axes) and \
            _aval(eqn.ins[-1])[1] == _region_shape(axes)
    if name == "sum":
        if eqn.params["keepdims"]:
            return False
        ndim = len(_aval(eqn.ins[0])[1])
        axis = eqn.params["axis"]
        return axis is None or {a % ndim for a in (axis if isinstance(axis, tuple)
                                                    else (axis,))} == set(range(ndim))
    return not eqn.params


# ---- one kernel -------------------------------------------------------------------

def _zero(dtype):
    return {"b": "False", "f": "0.0"}.get(dtype.kind, "0")


def _index_text(a):
    var, add = a
    if var is None:
        return str(add)
    return var if add == 0 else f"{var} {'+' if add > 0 else '-'} {abs(add)}"


class _Kernel:
    """The source of one fused kernel over a run of equations.

    Indices are affine: a loop variable plus an offset, or a constant
    (``(None, k)``); each value is computed once per (value, index) in a
    scope (CSE), so ``x[i + 1]`` and ``x[i]`` are two loads, not two copies.
    """

    def __init__(self, run, needed):
        self.run = run
        self.defs = {e.out: e for e in run}
        self.args = []  # external refs, in order
        self.arg_names = {}
        self.lines = []
        self.indent = 1
        self.scopes = [{}]
        self.count = 0
        self.loop_range = {}
        self.current_phase = 0
        self.breaks = None
        self._plan(needed)

    # planning: phases, what is stored, what accumulates
    def _plan(self, needed):
        phase, depth = {}, {}
        self.boundary = set()  # read after the loop that computes them
        for e in self.run:
            internal = [r for r in e.ins if isinstance(r, Var) and r in self.defs]
            p = max((phase[r] + (r in self.boundary) for r in internal), default=0)
            phase[e.out] = p
            if self._is_sum(e):
                self.boundary.add(e.out)
                depth[e.out] = 0
                continue
            d = 1 + max((depth[r] for r in internal if r not in self.boundary), default=0)
            if d > MAX_INLINE_DEPTH and e.out.aval[1]:
                self.boundary.add(e.out)
                d = 0
            depth[e.out] = d
        self.phase = phase
        self.stored = [e.out for e in self.run if e.out.aval[1] and
                       (e.out in needed or (e.out in self.boundary and not self._is_sum(e)))]
        self.returned = [e.out for e in self.run if not e.out.aval[1] and e.out in needed]

    def _is_sum(self, e):
        return e.op.name == "sum" and OPS.get("sum") is e.op

    # names
    def new(self, prefix="v"):
        self.count += 1
        return f"{prefix}{self.count}"

    def emit(self, line):
        self.lines.append("    " * self.indent + line)

    def arg(self, ref):
        key = ref if isinstance(ref, Var) else ("c", id(ref.value))
        name = self.arg_names.get(key)
        if name is None:
            name = self.arg_names[key] = f"a{len(self.args)}"
            self.args.append(ref)
        return name

    def lookup(self, key):
        for scope in reversed(self.scopes):
            if key in scope:
                return scope[key]
        return None

    # values
    def value(self, ref, idx):
        """A name (or literal) of ``ref`` at index ``idx``, emitting what computes it."""
        key = (ref if isinstance(ref, Var) else id(ref), idx)
        found = self.lookup(key)
        if found is not None:
            return found
        eqn = self.defs.get(ref) if isinstance(ref, Var) else None
        if eqn is None:
            name = self.load(self.arg(ref), _aval(ref), idx)
        elif ref in self.acc:
            name = self.acc[ref]
        elif ref in self.out_names and self.phase[ref] < self.current_phase:
            name = self.load(self.out_names[ref], ref.aval, idx)
        else:
            name = self.compute(eqn, idx)
        self.scopes[-1][key] = name
        return name

    def load(self, array, aval, idx):
        if not aval[1]:
            if aval[0] is np.ndarray:
                return self.bind(f"{array}[()]")
            return array
        return self.bind(f"{array}[{', '.join(_index_text(a) for a in idx)}]")

    def bind(self, text):
        name = self.new()
        self.emit(f"{name} = {text}")
        return name

    def compute(self, eqn, idx):
        name = eqn.op.name if OPS.get(eqn.op.name) is eqn.op else None
        if name == "getitem":
            return self.getitem(eqn, idx)
        if name in ("untake", "index_add"):
            return self.scatter(eqn, idx)
        shape = eqn.out.aval[1]
        args = []
        for r in eqn.ins:
            s = _aval(r)[1]
            lead = len(shape) - len(s)
            args.append(self.value(r, tuple(
                (None, 0) if n == 1 and shape[lead + k] != 1 else idx[lead + k]
                for k, n in enumerate(s))))
        loop = eqn.op.loop
        if eqn.op is OPS.get("power") and _is_two(eqn.ins[1]):
            loop = "{0} * {0}"  # NumPy's x ** 2 is np.square, exactly
        return self.bind(loop.format(*args))

    def getitem(self, eqn, idx):
        x = eqn.ins[0]
        axes = _basic_index(eqn.params["index"], _aval(x)[1])
        it = iter(idx)
        src = []
        for kind, start, _, _ in axes:  # steps are 1 (see fusible)
            if kind == "int":
                src.append((None, start))
            else:
                var, add = next(it)
                src.append((var, add + start))
        return self._apply(eqn.op.loop, self.value(x, tuple(src)))

    def _apply(self, loop, *names):
        return names[0] if loop == "{0}" else self.bind(loop.format(*names))

    def scatter(self, eqn, idx):
        """untake (zeros with g at index) and index_add (base plus g at index)."""
        g = eqn.ins[-1]
        axes = _basic_index(eqn.params["index"], eqn.out.aval[1])
        tests, src = [], []
        for (kind, start, _, n), (var, add) in zip(axes, idx):
            low, high = (start, start + 1) if kind == "int" else (start, start + n)
            if var is None:
                if not low <= add < high:
                    tests.append("False")
            else:
                lo, hi = self.loop_range[var]
                first, last = lo + add, hi - 1 + add
                if last < low or first >= high:
                    tests.append("False")
                else:
                    if first < low:
                        tests.append(f"{var} >= {low - add}")
                    if last >= high:
                        tests.append(f"{var} < {high - add}")
                    if self.breaks is not None:
                        self.breaks[var].update((low - add, high - add))
            if kind == "slice":
                src.append((var, add - start))
        base = _zero(_dtype(eqn.out.aval)) if eqn.op.name == "untake" else \
            self.value(eqn.ins[0], idx)
        if "False" in tests:
            return self.bind(base) if eqn.op.name == "untake" else base
        if not tests:
            gname = self.value(g, tuple(src))
            return self._apply(eqn.op.loop, *((gname,) if eqn.op.name == "untake"
                                              else (base, gname)))
        name = self.new()
        self.emit(f"{name} = {base}")
        self.emit(f"if {' and '.join(tests)}:")
        self.indent += 1
        self.scopes.append({})
        gname = self.value(g, tuple(src))
        if eqn.op.name == "untake":
            self.emit(f"{name} = {eqn.op.loop.format(gname)}")
        else:
            self.emit(f"{name} = {eqn.op.loop.format(name, gname)}")
        self.scopes.pop()
        self.indent -= 1
        return name

    # the whole kernel
    def source(self, name):
        self.acc = {}
        self.out_names = {v: f"o{k}" for k, v in enumerate(self.stored)}
        sums = [e for e in self.run if self._is_sum(e)]
        groups = {}  # (phase, shape) -> [("store", var) | ("sum", eqn)], first-seen order
        for e in self.run:
            if e.out in self.out_names:
                groups.setdefault((self.phase[e.out], e.out.aval[1]), []).append(("store", e))
            elif e in sums:
                shape = _aval(e.ins[0])[1]
                groups.setdefault((self.phase[e.out], shape), []).append(("sum", e))
        phases = sorted({p for p, _ in groups} | {self.phase[e.out] for e in self.run})
        for p in phases:
            self.current_phase = p
            for e in self.run:  # 0-d values once, before the loops
                if not e.out.aval[1] and self.phase[e.out] == p and not self._is_sum(e) \
                        and e.out not in self.acc:
                    self.value(e.out, ())
            for (q, shape), items in groups.items():
                if q == p:
                    self.loop(shape, items)
        results = [self.value(v, ()) for v in self.returned]
        if results:
            self.emit(f"return ({', '.join(results)}{',' if len(results) == 1 else ''})")
        params = [self.arg_names[r if isinstance(r, Var) else ("c", id(r.value))]
                  for r in self.args] + list(self.out_names.values())
        header = [f"def {name}({', '.join(params)}):"]
        return "\n".join(header + (self.lines or ["    pass"])) + "\n"

    def loop(self, shape, items):
        """One loop nest over ``shape`` computing ``items``. The range of each
        loop is cut where a slice's padding starts or ends (peeled), so that
        no test is left inside the loops."""
        for _, e in items:
            if self._is_sum(e):
                acc = self.acc[e.out] = self.new("s")
                self.emit(f"{acc} = {_zero(_dtype(e.out.aval))}")
        loop_vars = [f"i{k}" for k in range(len(shape))]
        mark, count = len(self.lines), self.count
        self.breaks = {v: set() for v in loop_vars}
        self.nest(loop_vars, [(0, n) for n in shape], items)  # finds the cuts
        del self.lines[mark:]
        self.count = count
        cuts = [sorted({0, n} | {b for b in self.breaks[v] if 0 < b < n})
                for v, n in zip(loop_vars, shape)]
        pieces = [list(zip(c, c[1:])) for c in cuts]
        if int(np.prod([len(p) for p in pieces])) > MAX_PEELED_LOOPS:
            pieces = [[(0, n)] for n in shape]
        self.breaks = None
        for ranges in itertools.product(*pieces):
            self.nest(loop_vars, ranges, items)

    def nest(self, loop_vars, ranges, items):
        for var, (low, high) in zip(loop_vars, ranges):
            self.loop_range[var] = (low, high)
            self.emit(f"for {var} in range({low}, {high}):")
            self.indent += 1
        idx = tuple((var, 0) for var in loop_vars)
        self.scopes.append({})
        for kind, e in items:
            if kind == "store":
                v = self.value(e.out, idx)
                target = ", ".join(loop_vars) if loop_vars else "()"
                self.emit(f"{self.out_names[e.out]}[{target}] = {v}")
            else:
                acc = self.acc[e.out]
                v = self.value(e.ins[0], idx)
                self.emit(f"{acc} = {e.op.loop.format(acc, v)}")
        self.scopes.pop()
        self.indent -= len(loop_vars)


# ---- compiling kernels ---------------------------------------------------------------

_KERNELS = {}  # source hash -> numba dispatcher (identical runs share one kernel)


def cache_dir():
    """Where kernel sources (and numba's cache of them) are written:
    ``$DUALREV_CACHE_DIR`` or ``~/.cache/dualrev/numba``, else a temporary
    directory."""
    path = os.environ.get("DUALREV_CACHE_DIR") or \
        os.path.join(os.path.expanduser("~"), ".cache", "dualrev", "numba")
    try:
        os.makedirs(path, exist_ok=True)
        if os.access(path, os.W_OK):
            return path
    except OSError:
        pass
    path = os.path.join(tempfile.gettempdir(), "dualrev-numba")
    os.makedirs(path, exist_ok=True)
    return path


def _holds(path, text):
    try:
        with open(path) as f:
            return f.read() == text
    except OSError:
        return False


def _kernel_function(source):
    """The numba dispatcher of a kernel's source (``def kernel(...)``)."""
    numba = require_numba()
    digest = hashlib.sha1(source.encode()).hexdigest()[:20]
    found = _KERNELS.get(digest)
    if found is not None:
        return found
    module_name = f"dualrev_kernel_{digest}"
    path = os.path.join(cache_dir(), module_name + ".py")
    text = "import math\nimport numpy as np\n\n\n" + source
    if not _holds(path, text):
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    dispatcher = numba.njit(cache=True, error_model="numpy")(module.kernel)
    _KERNELS[digest] = dispatcher
    return dispatcher


def _numba_type(numba, ref):
    if isinstance(ref, Const):
        return numba.typeof(ref.value)
    kind, shape, _ = ref.aval
    dtype = numba.from_dtype(_dtype(ref.aval))
    if kind is np.ndarray:
        return numba.types.Array(dtype, len(shape), "C")
    return dtype


# ---- the program: kernels between NumPy calls --------------------------------------

def _runs(program):
    """The body as items: ``("run", start, equations)`` for maximal runs of
    fusible equations that compute something, else ``("item", k, item)``."""
    out, run, start = [], [], 0

    def flush():
        scalar = all(not e.out.aval[1] for e in run)
        if run and any(e.op.name != "getitem" for e in run) and \
                (len(run) >= MIN_SCALAR_RUN or not scalar):
            out.append(("run", start, list(run)))
        else:
            out.extend(("item", start + j, e) for j, e in enumerate(run))
        run.clear()

    for k, item in enumerate(program.body):
        if isinstance(item, Equation) and fusible(item):
            if not run:
                start = k
            run.append(item)
        else:
            flush()
            out.append(("item", k, item))
    flush()
    return out


class _Driver(Generator):
    """Python source calling the kernels and, between them, NumPy."""

    def __init__(self, program):
        super().__init__(program)
        self.kernels = []
        self.outputs = {r for r in program.outputs if isinstance(r, Var)} | \
            {g.var for g in program.guards}  # (kernel name, source, equations, argument types)

    def source(self, name):
        self.numba = require_numba()
        self.names.namespace["np_empty"] = np.empty
        return super().source(name)

    def body(self):
        """Fused runs as kernel calls; other equations and guards as NumPy."""
        for kind, k, item in _runs(self.program):
            if kind == "run":
                yield from self.run(self.numba, k, item)
            elif isinstance(item, Equation):
                yield self.equation(item, k)
            else:
                yield self.guard(item, k)

    def run(self, numba, start, run):
        end = start + len(run)
        needed = {r for r, last in self.last.items() if last >= end and r in
                  {e.out for e in run}}
        if len(run) >= INTERPRET_MIN and all(_interpretable(e) for e in run):
            return self.interpreted(start, run, needed)
        kernel = _Kernel(run, needed)
        source = kernel.source("kernel")
        kname = f"kernel{len(self.kernels)}"
        types = [_numba_type(numba, r) for r in kernel.args] + \
            [_numba_type(numba, v) for v in kernel.stored]
        self.kernels.append((kname, source, run, types))
        self.names.namespace[kname] = None  # bound by build()
        call_args = [self.ref(r) for r in kernel.args]
        lines = []
        outs = []
        for v in kernel.stored:
            if v in needed:
                target = self.assign(v)
            else:
                target = f"w{len(outs)}"
            shape = self.names.value(v.aval[1], "p")
            dtype = self.names.value(_dtype(v.aval), "p")
            lines.append(f"{target} = np_empty({shape}, {dtype})")
            outs.append(target)
        call = f"{kname}({', '.join(call_args + outs)})"
        lines += self.returning(kernel.returned, call) if kernel.returned else [call]
        for j, e in enumerate(run):
            self.release(start + j, e.ins)
        return lines

    def returning(self, returned, call):
        """Lines assigning the scalars ``call`` returns, each of the type
        staging saw where :meth:`converted` says so."""
        names = [self.assign(v) for v in returned]
        lines = [f"{', '.join(names)}{',' if len(names) == 1 else ''} = {call}"]
        for v, n in zip(returned, names):
            if self.converted(v):
                lines.append(f"{n} = {self.names.value(_scalar_type(v.aval), 'p')}({n})")
        return lines

    def converted(self, var):
        """Must a scalar result become the type staging saw? Program outputs
        and values guards read must; a float64 read only by NumPy calls need
        not (NumPy computes the same on a Python float)."""
        return var in self.outputs or var.aval[0] is not np.float64

    def interpreted(self, start, run, needed):
        program = _Instructions(run, needed)
        kname = f"kernel{len(self.kernels)}"
        self.kernels.append((kname, None, run, program))
        self.names.namespace[kname] = program
        call = f"{kname}({', '.join(self.ref(r) for r in program.var_args)})"
        lines = self.returning(program.returned, call) if program.returned else []
        for j, e in enumerate(run):
            self.release(start + j, e.ins)
        return lines


def _scalar_type(aval):
    """How a kernel's scalar result becomes the value staging saw."""
    kind, _, dtype = aval
    if kind is np.ndarray:
        return _ArrayOf(np.dtype(dtype))
    return kind


# ---- long scalar runs: instructions for one compiled interpreter ---------------------

#: Runs of scalar equations at least this long run as instructions of one
#: compiled interpreter (numba's compile time grows faster than linearly with
#: the length of a straight-line function; the interpreter compiles once).
INTERPRET_MIN = 256

_STRUCTURAL = ("getitem", "untake", "index_add", "sum")


def _element_read(eqn):
    """Is ``eqn`` ``x[i, j...]`` reading one element of an input float64 array?"""
    if eqn.op is not OPS.get("getitem") or not isinstance(eqn.ins[0], Var):
        return False
    kind, shape, _ = eqn.ins[0].aval
    axes = _basic_index(eqn.params["index"], shape)
    return kind is np.ndarray and _dtype(eqn.ins[0].aval) == np.float64 and \
        axes is not None and all(k == "int" for k, _, _, _ in axes)


def _interpretable(eqn):
    """A 0-d equation of float64 and bool values (integer or float constants),
    or the read of one element of a float64 array."""
    if _element_read(eqn):
        return True
    if eqn.op.name in _STRUCTURAL or OPS.get(eqn.op.name) is not eqn.op or eqn.params \
            or len(eqn.ins) > 3 or eqn.out.aval[1] or _dtype(eqn.out.aval).kind not in "fb":
        return False
    for r in eqn.ins:
        if isinstance(r, Const):
            if not isinstance(r.value, (int, float, np.integer, np.floating, np.bool_)):
                return False
        elif r.aval[1] or _dtype(r.aval).kind not in "fb" or r.aval[0] is np.ndarray:
            return False
    return True


def _interpreter_ops():
    """The ops an interpreter runs, in code order: every elementwise op of the
    registry with a loop body."""
    return [op for name, op in sorted(OPS.items())
            if op.loop is not None and name not in _STRUCTURAL]


_INTERPRETERS = {}


def _interpreter():
    """(op -> code, compiled interpreter) for the registry as it is now."""
    ops = _interpreter_ops()
    key = tuple((op.name, op.loop) for op in ops)
    found = _INTERPRETERS.get(key)
    if found is not None:
        return found
    lines = ["def kernel(code, arg0, arg1, arg2, dst, r):",
             "    for k in range(code.shape[0]):",
             "        c = code[k]",
             "        x0 = r[arg0[k]]",
             "        x1 = r[arg1[k]]",
             "        x2 = r[arg2[k]]"]
    for k, op in enumerate(ops):
        lines.append(f"        {'if' if k == 0 else 'elif'} c == {k}:")
        lines.append(f"            v = np.float64({op.loop.format('x0', 'x1', 'x2')})")
    lines.append("        else:")
    lines.append("            v = np.nan")
    lines.append("        r[dst[k]] = v")
    found = _INTERPRETERS[key] = ({op: k for k, op in enumerate(ops)},
                                  _kernel_function("\n".join(lines) + "\n"))
    return found


class _Instructions:
    """A run of scalar equations as register instructions (registers are
    float64; booleans are 0.0 and 1.0), called like a kernel with the run's
    outside values; returns the values needed after the run."""

    def __init__(self, run, needed):
        codes, self.interpret = _interpreter()
        slots = {}
        template = []
        self.var_args, var_slots = [], []

        def slot(ref):
            key = ref if isinstance(ref, Var) else ("c", id(ref.value))
            if key not in slots:
                slots[key] = len(template)
                template.append(float(ref.value) if isinstance(ref, Const) else 0.0)
                if isinstance(ref, Var):
                    self.var_args.append(ref)
                    var_slots.append(slots[key])
            return slots[key]

        blocks = {}  # array Var -> its first register (its elements, flattened)
        self.blocks = []
        rows = []
        for e in run:
            if _element_read(e):
                x = e.ins[0]
                if x not in blocks:
                    blocks[x] = len(template)
                    template.extend([0.0] * int(np.prod(x.aval[1])))
                    self.blocks.append((len(self.var_args), blocks[x]))
                    self.var_args.append(x)
                    var_slots.append(None)
                axes = _basic_index(e.params["index"], x.aval[1])
                flat = np.ravel_multi_index(tuple(k for _, k, _, _ in axes), x.aval[1])
                slots[e.out] = blocks[x] + int(flat)
                continue
            ins = [slot(r) for r in e.ins]
            op = OPS["square"] if e.op is OPS.get("power") and _is_two(e.ins[1]) else e.op
            if op is OPS.get("square"):
                ins = ins[:1]
            slots[e.out] = len(template)
            template.append(0.0)
            ins += [0] * (3 - len(ins))
            rows.append((codes[op], *ins, slots[e.out]))
        table = np.array(rows, dtype=np.int64).reshape(-1, 5)
        self.code, self.arg0, self.arg1, self.arg2, self.dst = \
            (np.ascontiguousarray(table[:, k]) for k in range(5))
        self.template = np.array(template)
        self.var_slots = var_slots
        self.returned = [e.out for e in run if e.out in needed]
        self.out_slots = [slots[v] for v in self.returned]

    def compile(self):
        numba = require_numba()
        index = numba.types.Array(numba.int64, 1, "C")
        self.interpret.compile((index,) * 5 + (numba.types.Array(numba.float64, 1, "C"),))

    def __call__(self, *values):
        r = self.template.copy()
        for k, v in zip(self.var_slots, values):
            if k is not None:
                r[k] = v
        for j, start in self.blocks:
            v = values[j]
            r[start:start + v.size] = v.ravel()
        self.interpret(self.code, self.arg0, self.arg1, self.arg2, self.dst, r)
        return [r[k] for k in self.out_slots]


class _ArrayOf:
    """A 0-d array of ``dtype`` from a scalar."""

    __slots__ = ("dtype",)

    def __init__(self, dtype):
        self.dtype = dtype

    def __call__(self, v):
        return np.array(v, dtype=self.dtype)


def generate_numba(program, name="replay"):
    """``(source, namespace, kernel sources, compile seconds)`` of ``program``
    with its fusible runs as numba kernels; raises :class:`NumbaUnsupported`
    naming the op when numba cannot compile a kernel."""
    numba = require_numba()
    driver = _Driver(program)
    source, namespace = driver.source(name)
    start = time.perf_counter()
    kernel_sources = []
    for kname, ksource, run, types in driver.kernels:
        try:
            if ksource is None:  # instructions of the interpreter
                types.compile()
                continue
            kernel_sources.append(ksource.replace("def kernel(", f"def {kname}(", 1))
            dispatcher = _kernel_function(ksource)
            dispatcher.compile(tuple(types))
        except Exception as error:  # numba's typing and lowering errors
            raise NumbaUnsupported(_culprit(numba, run), str(error).splitlines()[0]) \
                from error
        namespace[kname] = dispatcher
    return source, namespace, kernel_sources, time.perf_counter() - start


def _culprit(numba, run):
    """The name of the first op of ``run`` whose loop body numba cannot compile
    on scalars of its arguments' dtypes (the run's first op if each can)."""
    seen = set()
    for e in run:
        key = (e.op, tuple(_dtype(_aval(r)) for r in e.ins))
        if e.op.name in _STRUCTURAL or key in seen:
            continue
        seen.add(key)
        names = [f"x{k}" for k in range(len(e.ins))]
        src = f"def probe({', '.join(names)}):\n    return {e.op.loop.format(*names)}\n"
        namespace = {"np": np, "math": math}
        try:
            exec(src, namespace)
            types = tuple(numba.from_dtype(_dtype(_aval(r))) for r in e.ins)
            numba.njit(error_model="numpy")(namespace["probe"]).compile(types)
        except Exception:
            return e.op.name
    return run[0].op.name
