"""Arithmetic: the Python operators and their NumPy ufuncs.

The gates of backpropagation are here: ``add`` distributes the cotangent to
both inputs, ``multiply`` swaps the inputs, ``maximum`` routes the cotangent
to the input that won. The operators' implementations are the ``operator``
functions: the same as the ufuncs on arrays, and several times faster on
NumPy scalars, which matters on the tape's hot path.
"""

import operator

import numpy as np

from ..registry import (ELEMENTWISE, Teaching, defbinary, defnondiff, defop, fit_tangent,
                        shape_of, unbroadcast)


def add_jvp_x(t, out, x, y):
    return fit_tangent(t, x, out)


def add_jvp_y(t, out, x, y):
    return fit_tangent(t, y, out)


def add_vjp_x(g, out, x, y):
    shape = getattr(x, "shape", ())
    return g if getattr(g, "shape", ()) == shape else unbroadcast(g, shape)


def add_vjp_y(g, out, x, y):
    shape = getattr(y, "shape", ())
    return g if getattr(g, "shape", ()) == shape else unbroadcast(g, shape)


add = defop("add", operator.add, nargs=2, jvp=(add_jvp_x, add_jvp_y),
            vjp=(add_vjp_x, add_vjp_y), saves=((), ()), identity=(0, 1), numpy=np.add,
            flops=ELEMENTWISE, loop="{0} + {1}",
            teaching=Teaching(short="add", infix="{0} + {1}", local=("1", "1"),
                              gate="add distributes: both inputs get the gradient unchanged",
                              fwd_gate="add: the tangents add"),
            doc="x + y. The add gate: the cotangent is distributed unchanged.")


def subtract_jvp_y(t, out, x, y):
    return -fit_tangent(t, y, out)


def subtract_vjp_y(g, out, x, y):
    return unbroadcast(-g, shape_of(y))


subtract = defop("subtract", operator.sub, nargs=2,
                 jvp=(add_jvp_x, subtract_jvp_y), vjp=(add_vjp_x, subtract_vjp_y),
                 saves=((), ()), identity=(0,), numpy=np.subtract, flops=ELEMENTWISE,
                 loop="{0} - {1}",
                 teaching=Teaching(
                     short="sub", infix="{0} - {1}", local=("1", "-1"),
                     gate="subtract distributes, with a minus sign for the second input",
                     fwd_gate="subtract: the tangents subtract"),
                 doc="x - y.")


def multiply_jvp_x(t, out, x, y):
    return fit_tangent(t, x, out) * y


def multiply_jvp_y(t, out, x, y):
    return x * fit_tangent(t, y, out)


def multiply_vjp_x(g, out, x, y):
    c = g * y
    shape = getattr(x, "shape", ())
    return c if getattr(c, "shape", ()) == shape else unbroadcast(c, shape)


def multiply_vjp_y(g, out, x, y):
    c = g * x
    shape = getattr(y, "shape", ())
    return c if getattr(c, "shape", ()) == shape else unbroadcast(c, shape)


multiply = defop("multiply", operator.mul, nargs=2,
                 jvp=(multiply_jvp_x, multiply_jvp_y), vjp=(multiply_vjp_x, multiply_vjp_y),
                 saves=((1,), (0,)), numpy=np.multiply, flops=ELEMENTWISE, loop="{0} * {1}",
                 teaching=Teaching(
                     short="mul", infix="{0} * {1}", local=("{1}", "{0}"),
                     gate="multiply swaps: each input gets the other input times the gradient",
                     fwd_gate="multiply: product rule, x' y + x y'"),
                 doc="x * y. The multiply gate: each input gets the cotangent times "
                     "the other input (the inputs swap).")

def negative_rule(s, out, x):
    """The JVP and the VJP of -x: the tangent or cotangent, negated."""
    return -s


negative = defop("negative", operator.neg, jvp=negative_rule, vjp=negative_rule,
                 saves=((),), numpy=np.negative, flops=ELEMENTWISE, loop="-{0}",
                 teaching=Teaching(short="neg", infix="-{0}", local=("-1",)), doc="-x.")


def divide_dy(x, y, out):
    return -out / y


# d/dx applied as t / y and g / y: one pass, where g * (1 / y) would take two.
def divide_jvp_x(t, out, x, y):
    return fit_tangent(t, x, out) / y


def divide_jvp_y(t, out, x, y):
    return fit_tangent(t, y, out) * divide_dy(x, y, out)


def divide_vjp_x(g, out, x, y):
    return unbroadcast(g / y, shape_of(x))


def divide_vjp_y(g, out, x, y):
    return unbroadcast(g * divide_dy(x, y, out), shape_of(y))


divide = defop("divide", operator.truediv, nargs=2,
               jvp=(divide_jvp_x, divide_jvp_y), vjp=(divide_vjp_x, divide_vjp_y),
               saves=((1,), (1, "out")), numpy=np.true_divide, flops=ELEMENTWISE,
               loop="{0} / {1}",
               teaching=Teaching(short="div", infix="{0} / {1}",
                                 local=("(1 / {1})", "(-{0} / {1}**2)"),
                                 gate="divide: d(a/b) = 1/b da - a/b**2 db",
                                 fwd_gate="divide: quotient rule"),
               doc="x / y.")


def times_power_dx(s, x, y):
    """``s * y * x ** (y - 1)``, the factor ``y`` applied to ``s`` first.

    A tangent or cotangent ``s`` is often constant where ``x`` is traced (the
    direction ``v`` of an HVP): ``(s * y) * x`` then records one product,
    where ``s * (y * x)`` would record two.
    """
    if isinstance(y, (int, float)) and y == 2:  # x ** 2: one pass, not a second power
        return (s * 2) * x
    return (s * y) * x ** (y - 1)


def power_dy(x, y, out):
    # out * log(x), taken as 0 where x == 0 (the limit for y > 0).
    safe_x = np.where(x == 0, 1.0, x)
    return out * np.log(safe_x)


def power_jvp_x(t, out, x, y):
    return times_power_dx(fit_tangent(t, x, out), x, y)


def power_jvp_y(t, out, x, y):
    return fit_tangent(t, y, out) * power_dy(x, y, out)


def power_vjp_x(g, out, x, y):
    return unbroadcast(times_power_dx(g, x, y), shape_of(x))


def power_vjp_y(g, out, x, y):
    return unbroadcast(g * power_dy(x, y, out), shape_of(y))


power = defop("power", operator.pow, nargs=2,
              jvp=(power_jvp_x, power_jvp_y), vjp=(power_vjp_x, power_vjp_y),
              saves=((0, 1), (0, 1, "out")), numpy=np.power, flops=ELEMENTWISE,
              loop="{0} ** {1}",
              teaching=Teaching(short="pow", infix="{0}**{1}",
                                local=("({1} * {0}**({1} - 1))", "({o} * log({0}))"),
                                gate="power: d(a**c) = c a**(c-1) da",
                                fwd_gate="power: c a**(c-1) a'"),
              doc="x ** y. d/dy is taken as 0 where x == 0.")


def remainder_dy(x, y, out):
    return -np.floor_divide(x, y)


remainder = defbinary("remainder", np.remainder, lambda x, y, out: 1.0, remainder_dy,
                      saves=((), (0, 1)), numpy=(np.remainder, np.fmod),
                      loop="np.remainder({0}, {1})",
                      doc="x % y: d/dx = 1, d/dy = -floor(x / y).")


def maximum_dx(x, y, out):
    # The max gate routes the cotangent to the winner; a tie goes to y, so
    # relu = maximum(x, 0) has relu'(0) = 0.
    return x > y


def maximum_dy(x, y, out):
    return x <= y


def minimum_dx(x, y, out):
    return x < y


def minimum_dy(x, y, out):
    return x >= y


maximum = defbinary("maximum", np.maximum, maximum_dx, maximum_dy,
                    saves=((0, 1), (0, 1)), numpy=np.maximum, loop="np.maximum({0}, {1})",
                    teaching=Teaching(
                        short="max", local=("({0} > {1})", "({0} <= {1})"),
                        gate="max routes: the larger input gets the whole gradient, the other 0",
                        fwd_gate="max: the larger input's tangent passes"),
                    doc="Elementwise max. The max gate routes the cotangent to the "
                        "larger input; at a tie it goes to the second argument.")
minimum = defbinary("minimum", np.minimum, minimum_dx, minimum_dy,
                    saves=((0, 1), (0, 1)), numpy=np.minimum, loop="np.minimum({0}, {1})",
                    teaching=Teaching(
                        short="min", local=("({0} < {1})", "({0} >= {1})"),
                        gate="min routes: the smaller input gets the whole gradient, the other 0",
                        fwd_gate="min: the smaller input's tangent passes"),
                    doc="Elementwise min; at a tie the cotangent goes to the second argument.")


def fmax_dx(x, y, out):
    return (x > y) | np.isnan(y)


def fmax_dy(x, y, out):
    return ~((x > y) | np.isnan(y))


def fmin_dx(x, y, out):
    return (x < y) | np.isnan(y)


def fmin_dy(x, y, out):
    return ~((x < y) | np.isnan(y))


fmax = defbinary("fmax", np.fmax, fmax_dx, fmax_dy, saves=((0, 1), (0, 1)), numpy=np.fmax,
                 loop="np.fmax({0}, {1})",
                 doc="Elementwise max ignoring NaN; ties go to the second argument.")
fmin = defbinary("fmin", np.fmin, fmin_dx, fmin_dy, saves=((0, 1), (0, 1)), numpy=np.fmin,
                 loop="np.fmin({0}, {1})",
                 doc="Elementwise min ignoring NaN; ties go to the second argument.")


def where_jvp(t, out, cond, x, y, pos):
    # The branch not taken contributes 0 * t, not 0: a non-finite tangent
    # there gives NaN, exactly as the VJP's 0 * inf does, so both modes agree.
    t = fit_tangent(t, (x, y)[pos - 1], out)
    return np.where(cond, t, 0 * t) if pos == 1 else np.where(cond, 0 * t, t)


def where_jvp_x(t, out, cond, x, y):
    return where_jvp(t, out, cond, x, y, 1)


def where_jvp_y(t, out, cond, x, y):
    return where_jvp(t, out, cond, x, y, 2)


def where_vjp_x(g, out, cond, x, y):
    return unbroadcast(np.where(cond, g, 0.0), shape_of(x))


def where_vjp_y(g, out, cond, x, y):
    return unbroadcast(np.where(cond, 0.0, g), shape_of(y))


WHERE_DOC = """where(cond, x, y); the condition is not differentiated.

The trap: ``np.where(x > 0, np.sqrt(x), 0.0)`` has derivative NaN at
``x = 0`` in both modes, although the value there is 0. Both branches are
computed everywhere, and the branch not taken still passes ``0 * sqrt'(0)
= 0 * inf = NaN`` to ``x``. The safe recipe keeps the unused branch finite:
``np.where(x > 0, np.sqrt(np.where(x > 0, x, 1.0)), 0.0)``.
"""

where = defop("where", np.where, nargs=3,
              jvp=(None, where_jvp_x, where_jvp_y),
              vjp=(None, where_vjp_x, where_vjp_y), saves=((), (0,), (0,)), numpy=np.where,
              flops=ELEMENTWISE, loop="{1} if {0} else {2}",
              doc=WHERE_DOC)

# Derivative zero almost everywhere, or integer/boolean valued. In a fused
# loop body (the bitwise ops take integers only and are not fused):
_NONDIFF_LOOP = {"greater": "{0} > {1}", "greater_equal": "{0} >= {1}", "less": "{0} < {1}",
                 "less_equal": "{0} <= {1}", "equal": "{0} == {1}",
                 "not_equal": "{0} != {1}", **{name: f"np.{name}({{0}}, {{1}})" for name in
                                               ("logical_and", "logical_or", "logical_xor")},
                 **{name: f"np.{name}({{0}})" for name in
                    ("logical_not", "isnan", "isinf", "isfinite", "signbit", "sign", "floor",
                     "ceil", "trunc", "rint")},
                 "floor_divide": "np.floor_divide({0}, {1})"}
for _name, _ufunc in [
        ("greater", np.greater), ("greater_equal", np.greater_equal),
        ("less", np.less), ("less_equal", np.less_equal), ("equal", np.equal),
        ("not_equal", np.not_equal), ("logical_and", np.logical_and),
        ("logical_or", np.logical_or), ("logical_xor", np.logical_xor),
        ("logical_not", np.logical_not), ("isnan", np.isnan), ("isinf", np.isinf),
        ("isfinite", np.isfinite), ("signbit", np.signbit), ("sign", np.sign),
        ("floor", np.floor), ("ceil", np.ceil), ("trunc", np.trunc), ("rint", np.rint),
        ("floor_divide", np.floor_divide), ("bitwise_and", np.bitwise_and),
        ("bitwise_or", np.bitwise_or), ("invert", np.invert)]:
    defnondiff(_name, _ufunc, numpy=_ufunc, loop=_NONDIFF_LOOP.get(_name),
               doc=f"{_ufunc.__name__}: not differentiable (piecewise constant).")
