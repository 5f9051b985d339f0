"""The default backend: a program as generated Python source over NumPy.

One line per equation, calling the op's NumPy implementation on plain
arrays (Python operators where the op's implementation is that operator),
one ``if`` per guard, compiled once with ``exec``. No tracer, dispatch or
rule lookup is left at run time.

The source never contains user data: constants and parameters are names
bound in the function's namespace, read by reference; functions are named
after dualrev's own ops, and user-registered ops get a numbered name.

Buffer reuse: an elementwise equation whose input dies there, owns fresh
memory nobody else views, and has the output's shape and dtype, writes its
output into that input (``np.multiply(t1, t2, out=t1)``), so a large-array
gradient stops paying a fresh allocation per op. Names are reused once their
value is dead, so the generated code frees intermediates as eager code does.
Large arrays that need new memory but that no output shares go into buffers
kept across calls, one set per thread (:class:`KeptBuffers`).
"""

import collections
import keyword
import operator
import re
import threading

import numpy as np

from .registry import OPS
from .staging import Equation, Var

__all__ = ["generate", "generated", "defined", "Miss"]

#: Ops whose implementation is a Python operator, written infix.
INFIX = {operator.add: "{} + {}", operator.sub: "{} - {}", operator.mul: "{} * {}",
         operator.truediv: "{} / {}", operator.pow: "{} ** {}", operator.neg: "-{}"}

#: The ufunc each operator is on arrays (for writing into a buffer).
UFUNC_OF = {operator.add: np.add, operator.sub: np.subtract, operator.mul: np.multiply,
            operator.truediv: np.true_divide, operator.neg: np.negative}

#: Arrays smaller than this are not worth writing into a buffer (``out=`` costs).
REUSE_MIN_SIZE = 4096

_RESERVED = re.compile(r"^(?:[tcpg]\d+|op\d+|np_\w+)$")


class Miss:
    """What a replay returns when ``guard`` does not hold."""

    __slots__ = ("guard",)

    def __init__(self, guard):
        self.guard = guard


def _ufunc(op):
    """The ufunc ``op`` applies, if it can write into a buffer (``out=``).

    ``**`` is not one: on arrays it takes fast paths (``x ** 2`` is
    ``np.square``) that ``np.power(..., out=)`` would not take.
    """
    impl = op.impl
    if isinstance(impl, np.ufunc):
        return impl
    return UFUNC_OF.get(impl) if impl.__hash__ is not None else None


def _fresh(op):
    """Does ``op`` always return new memory (never a view of an input)?"""
    impl = op.impl
    return isinstance(impl, np.ufunc) or op.into is not None or \
        (impl.__hash__ is not None and impl in INFIX)


class _Names:
    """Namespace entries for functions, constants and parameters, each kind
    numbered on its own (``c0, c1``, ``p0``, ``op0``)."""

    def __init__(self):
        self.namespace = {}
        self._by_id = {}
        self._counts = collections.Counter()

    def _numbered(self, prefix):
        name = f"{prefix}{self._counts[prefix]}"
        self._counts[prefix] += 1
        return name

    def value(self, value, prefix):
        key = (prefix, id(value))
        name = self._by_id.get(key)
        if name is None:
            name = self._by_id[key] = self._numbered(prefix)
            self.namespace[name] = value
        return name

    def numpy(self, ufunc):
        """A NumPy ufunc, named ``np_<its name>``."""
        name = f"np_{ufunc.__name__}"
        if self.namespace.setdefault(name, ufunc) is not ufunc:  # a namesake
            return self.value(ufunc, "np_")
        return name

    def function(self, op, fn, suffix=""):
        key = ("f", id(fn))
        name = self._by_id.get(key)
        if name is not None:
            return name
        name = op.name + suffix
        if not (OPS.get(op.name) is op and op.name in BUILTIN) or not name.isidentifier() \
                or keyword.iskeyword(name) or _RESERVED.match(name) or name in self.namespace:
            name = self._numbered("op") + suffix
        self._by_id[key] = name
        self.namespace[name] = fn
        return name


#: Names of the ops dualrev itself registers: the only names generated
#: source spells out (filled by the package on import).
BUILTIN = set()


def _last_uses(program):
    last = {}
    for k, item in enumerate(program.body):
        reads = item.ins if isinstance(item, Equation) else (item.var,)
        for r in reads:
            if isinstance(r, Var):
                last[r] = k
    end = len(program.body)
    for r in program.outputs:
        if isinstance(r, Var):
            last[r] = end
    return last


def _reusable(program):
    """Vars whose buffer an equation may overwrite once they are dead: arrays
    made by an op that returns fresh memory and read only by such ops (so
    that no view of them exists)."""
    owned = set()
    viewed = set()
    for item in program.body:
        if not isinstance(item, Equation):
            continue
        if not _fresh(item.op):
            viewed.update(r for r in item.ins if isinstance(r, Var))
        elif item.out.aval[0] is np.ndarray:
            owned.add(item.out)
    return owned - viewed - set(program.inputs)


def generate(program, name="replay"):
    """``(source, namespace)`` of a function ``name(*inputs)`` that runs
    ``program`` and returns its outputs as a tuple, or a :class:`Miss`.

    Large arrays that no output shares memory with are written into buffers
    kept across calls (one set per thread), so that a replay allocates only
    what it returns: a first generation finds them, a second writes into them.
    """
    first = Generator(program)
    source, namespace = first.source(name)
    kept = first.keepable()
    return Generator(program, kept).source(name) if kept else (source, namespace)


def defined(source, namespace, name="replay"):
    """The function ``name`` that generated ``source`` defines in ``namespace``."""
    exec(compile(source, "<dualrev.compile>", "exec"), namespace)
    return namespace[name]


def generated(program, name="replay"):
    """``(source, function)`` of ``program`` (see :func:`generate`)."""
    source, namespace = generate(program, name)
    return source, defined(source, namespace, name)


class Generator:
    def __init__(self, program, kept=frozenset()):
        self.program = program
        self.names = _Names()
        self.last = _last_uses(program)
        self.reusable = _reusable(program)
        self.local = {}  # live Var -> its local name
        self.free = []  # local names whose value is dead
        self.count = 0
        self.kept = kept  # Vars whose new memory is a buffer kept across calls
        self.kept_avals = []  # (shape, dtype) of each kept buffer
        self.memory = {}  # Var -> the Var whose new memory holds its value
        self.allocating = set()  # Vars that could have taken a kept buffer

    def keepable(self):
        """The Vars (after :meth:`source`) whose new memory no output shares
        and no op that may return a view reads."""
        program = self.program
        shared = [r for r in program.outputs if isinstance(r, Var)]
        shared += [r for e in program.equations if not _fresh(e.op)
                   for r in e.ins if isinstance(r, Var)]
        return frozenset(self.allocating - {self.memory.get(r, r) for r in shared})

    def assign(self, var):
        if self.free:
            n = self.free.pop()
        else:
            n = f"t{self.count}"
            self.count += 1
        self.local[var] = n
        return n

    def ref(self, r):
        return self.local[r] if isinstance(r, Var) else self.names.value(r.value, "c")

    def release(self, k, reads):
        for r in reads:
            if isinstance(r, Var) and self.last.get(r) == k and r in self.local:
                self.free.append(self.local.pop(r))

    def source(self, name):
        program = self.program
        args = [self.assign(v) for v in program.inputs]
        lines = [f"def {name}({', '.join(args)}):"]
        lines += ["    " + line for line in self.body()]
        outs = ", ".join(self.ref(r) for r in program.outputs)
        lines.append(f"    return ({outs}{',' if len(program.outputs) == 1 else ''})")
        if self.kept_avals:
            self.names.namespace["buffers"] = KeptBuffers(self.kept_avals)
            lines.insert(1, "    kept = buffers()")
        return "\n".join(lines) + "\n", self.names.namespace

    def body(self):
        """The lines of the function's body, one per equation and guard."""
        for k, item in enumerate(self.program.body):
            yield self.equation(item, k) if isinstance(item, Equation) else self.guard(item, k)

    def guard(self, guard, k):
        miss = self.names.value(Miss(guard), "g")
        x = self.local[guard.var]
        if guard.kind == "bool":
            test = f"not {x}" if guard.expected else x
        elif isinstance(guard.expected, (int, np.integer)):
            test = f"{x} != {self.names.value(guard.expected, 'g')}"
        else:
            self.names.namespace["same"] = _same
            test = f"not same({x}, {self.names.value(guard.expected, 'g')})"
        self.release(k, (guard.var,))
        return f"if {test}: return {miss}"

    def call_args(self, eqn):
        args = [self.ref(r) for r in eqn.ins]
        if eqn.params:
            if OPS.get(eqn.op.name) is eqn.op and eqn.op.name in BUILTIN:
                args += [f"{k}={self.names.value(v, 'p')}" for k, v in eqn.params.items()]
            else:
                args.append(f"**{self.names.value(eqn.params, 'p')}")
        return args

    def equation(self, eqn, k):
        op, names = eqn.op, self.names
        args = self.call_args(eqn)
        buffer = self.buffer_for(eqn, k)
        if buffer is not None:
            target = self.local.pop(buffer)
            if op.into is not None:
                text = f"{names.function(op, op.into, '_into')}({target}, {', '.join(args)})"
            else:
                text = f"{names.numpy(_ufunc(op))}({', '.join(args)}, out={target})"
            self.release(k, eqn.ins)
            self.local[eqn.out] = target
            self.memory[eqn.out] = self.memory.get(buffer, buffer)
            return f"{target} = {text}"
        if self.writes_into(eqn):
            self.allocating.add(eqn.out)
            if eqn.out in self.kept:
                return self.into_kept(eqn, k, args)
        if op.impl in INFIX and not eqn.params:
            text = INFIX[op.impl].format(*args)
        else:
            text = f"{names.function(op, op.impl)}({', '.join(args)})"
        self.release(k, eqn.ins)
        return f"{self.assign(eqn.out)} = {text}"

    def writes_into(self, eqn):
        """Can ``eqn`` write its output into a given buffer (and is it worth it)?"""
        op, aval = eqn.op, eqn.out.aval
        if aval[0] is not np.ndarray or int(np.prod(aval[1])) < REUSE_MIN_SIZE:
            return False
        return op.into is not None or (_ufunc(op) is not None and op.impl is not operator.pow)

    def into_kept(self, eqn, k, args):
        """``eqn`` written into a buffer kept across calls."""
        buffer = f"kept[{len(self.kept_avals)}]"
        self.kept_avals.append(eqn.out.aval[1:])
        op, names = eqn.op, self.names
        if op.into is not None:
            text = f"{names.function(op, op.into, '_into')}({buffer}, {', '.join(args)})"
        else:
            text = f"{names.numpy(_ufunc(op))}({', '.join(args)}, out={buffer})"
        self.release(k, eqn.ins)
        return f"{self.assign(eqn.out)} = {text}"

    def buffer_for(self, eqn, k):
        """The input whose buffer ``eqn`` may write its output into, or None.

        Ops with an ``into`` form always do (scattering into a copy would cost
        a pass over the whole buffer); ufuncs only on arrays large enough for
        ``out=`` to pay.
        """
        op = eqn.op
        if op.into is not None:
            candidates = eqn.ins[:1]
        elif _ufunc(op) is not None and \
                int(np.prod(eqn.out.aval[1])) >= REUSE_MIN_SIZE:
            candidates = eqn.ins
        else:
            return None
        for r in candidates:
            if r in self.reusable and self.last.get(r) == k and r in self.local \
                    and r.aval == eqn.out.aval:
                return r
        return None


class KeptBuffers:
    """The buffers of one program kept across calls, one set per thread."""

    def __init__(self, avals):
        self.avals = tuple(avals)
        self.local = threading.local()

    def __call__(self):
        buffers = getattr(self.local, "buffers", None)
        if buffers is None:
            buffers = self.local.buffers = [np.empty(shape, dtype)
                                            for shape, dtype in self.avals]
        return buffers


def _same(a, b):
    """Guard test for a value read at staging: same type, shape and values."""
    return type(a) is type(b) and np.array_equal(a, b, equal_nan=True)
