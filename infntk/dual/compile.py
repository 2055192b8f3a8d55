r"""sympy -> ``jax.numpy``: compile a dual or an activation once, with stability rewrites.

``compile_expr(expr, args)`` returns a broadcasting, jit-able, dtype-preserving function of ``args``.
It is ``sympy.lambdify(..., cse=True)`` onto ``jax.numpy`` after rewriting the expression so the
numbers stay finite where the mathematics is finite:

* ``acos(a)``, ``asin(a)``: the argument is clipped to :math:`[-1, 1]` (so a correlation
  :math:`\rho = q_{12}/\sqrt{q_{11}q_{22}}` that rounds to :math:`1 + 10^{-16}` is fine), and the
  derivative :math:`\mp 1/\sqrt{1-a^2}` is set to 0 where it is infinite (:math:`|a| \ge 1`);
* fractional powers :math:`b^{p}`, :math:`p > 0` non-integer (``sqrt(1 - rho**2)``): the base is
  clamped at 0 and the derivative is 0 where the base is :math:`\le 0`;
* negative powers of the variances themselves (:math:`q_{11}^{-1/2}` in :math:`\rho`): 0 where the
  variance is 0. A zero variance means a deterministic zero input, so
  :math:`\rho = q_{12}/\sqrt{q_{11}q_{22}}` (with :math:`q_{12} = 0`) is taken as 0; e.g. ReLU with
  :math:`q_{11} = 0` gives :math:`T = 0` instead of :math:`0/0`. The zero branch is selected with the
  double-``where`` idiom, so gradients stay finite too.
* ``DiracDelta`` (from differentiating a jump) is 0: the almost-everywhere derivative.

and, exactly, for speed (see :func:`_rewrite_correlation`, :func:`_share_roots`): a correlation
:math:`c = N/\sqrt P` (:math:`\rho`, and GELU's and erf's :math:`q_{12}/\sqrt{(1+q_{11})(1+q_{22})}`
-like ones) gives its angle and every :math:`(1-c^2)^{k/2}` from one root of
:math:`D = P - N^2` (:math:`\sqrt D` for :math:`\rho`, :math:`1/\sqrt D` where :math:`P > 0`
even at zero variances). The arc-cosine angle :math:`\operatorname{atan2}(\sqrt D, N)` is
:func:`infntk.dual.fastmath.fast_angle` (below an ulp, ~10x cheaper than XLA's ``atan`` on CPU,
ending in a fusion boundary, :mod:`infntk.fusion`); the GELU/erf-like angles are one-argument
``atan`` (cheaper than ``atan2`` in XLA).

Everything else is left to ``jax.numpy``: a negative power of a quantity that can vanish for other
reasons is a genuine infinity and is reported as ``inf``.

Example:
    >>> import jax.numpy as jnp, sympy as sp
    >>> from infntk.dual.symbols import Q11, Q12, Q22
    >>> f = compile_expr(sp.acos(Q12 / sp.sqrt(Q11 * Q22)), (Q11, Q12, Q22))
    >>> float(f(1.0, 1.0 + 1e-12, 1.0))
    0.0
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp
import sympy as sp

from ..fusion import divide_by_one
from .fastmath import fast_angle
from .symbols import Q11, Q12, Q22

__all__ = ["compile_expr", "compile_exprs", "rewrite_stable", "safe_acos", "safe_asin", "safe_pow"]


# --------------------------------------------------------------------------- jnp primitives


@jax.custom_jvp
def safe_acos(x):
    """``arccos`` of ``x`` clipped to [-1, 1]; derivative 0 where it is infinite."""
    return jnp.arccos(jnp.clip(x, -1.0, 1.0))


@safe_acos.defjvp
def _safe_acos_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    one_m = 1.0 - x * x
    ok = one_m > 0
    d = jnp.where(ok, -1.0 / jnp.sqrt(jnp.where(ok, one_m, 1.0)), 0.0)
    return safe_acos(x), d * t


@jax.custom_jvp
def safe_asin(x):
    """``arcsin`` of ``x`` clipped to [-1, 1]; derivative 0 where it is infinite."""
    return jnp.arcsin(jnp.clip(x, -1.0, 1.0))


@safe_asin.defjvp
def _safe_asin_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    one_m = 1.0 - x * x
    ok = one_m > 0
    d = jnp.where(ok, 1.0 / jnp.sqrt(jnp.where(ok, one_m, 1.0)), 0.0)
    return safe_asin(x), d * t


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def safe_pow(b, p):
    """``max(b, 0) ** p`` for a positive non-integer ``p``; derivative 0 where ``b <= 0``."""
    return _pow(jnp.maximum(b, 0.0), p)


def _pow(b, p):
    """``b ** p`` with native square roots for the half-integer exponents the duals use (a general
    ``pow`` costs two transcendental functions; ``sqrt``/``rsqrt`` cost about one multiply)."""
    if p == 0.5:
        return jnp.sqrt(b)
    if p == 1.5:
        return b * jnp.sqrt(b)
    if p == -0.5:
        return jax.lax.rsqrt(b)
    if p == -1.0:
        return 1.0 / b
    if p == -1.5:
        return jax.lax.rsqrt(b) / b
    if p == 2.5:
        return b * b * jnp.sqrt(b)
    if p == -2.5:
        return jax.lax.rsqrt(b) / (b * b)
    return b ** p


@safe_pow.defjvp
def _safe_pow_jvp(p, primals, tangents):
    (b,), (t,) = primals, tangents
    ok = b > 0
    bs = jnp.where(ok, b, 1.0)
    d = jnp.where(ok, p * _pow(bs, p - 1.0), 0.0)
    return safe_pow(b, p), d * t


@jax.custom_jvp
def gram_det(p, n):
    r""":math:`D = P - N^2` (:math:`P = q_{11}q_{22}`, :math:`N = q_{12}`), exactly 0 where the
    rounded :math:`N^2 \ge P`.

    XLA on CPU contracts ``p - n * n`` to a fused multiply-add, which keeps ``n * n`` unrounded:
    at :math:`q_{12} = q_{11} = q_{22}` (every ``K(x, x)``) it returns the rounding error of
    :math:`q^2` instead of 0, the root :math:`\sqrt D` becomes ~``sqrt(eps) q`` and the arc-cosine
    duals' :math:`T'` moves by ~1e-8 (float64) or ~3e-4 (float32). Comparing the two rounded
    products cannot be contracted, so :math:`D = 0` is exact there; elsewhere the (possibly fused)
    difference is at least as accurate."""
    nn = n * n
    return jnp.where(nn >= p, jnp.zeros_like(nn), p - nn)


@gram_det.defjvp
def _gram_det_jvp(primals, tangents):
    (p, n), (dp, dn) = primals, tangents
    return gram_det(p, n), dp - 2.0 * n * dn


@jax.custom_jvp
def safe_angle(x, y):
    """``atan2(x, y)`` for ``x >= 0``, with ``pi/2`` at ``x = y = 0``; finite derivative there."""
    # fastmath.fast_angle (below 1 ulp plus the rounding of rho, exactly 0 or pi at x = 0) is
    # about 10x cheaper than XLA's atan on CPU. Ending it in a division by one keeps XLA from
    # recomputing the polynomial inside each of the angle's consumers (infntk.fusion): without
    # it 10 x [Dense, Relu] ran 4.7x slower than with XLA's atan, with it 0.55x (float32, N=2000).
    return divide_by_one(fast_angle(x, y), y)


@safe_angle.defjvp
def _safe_angle_jvp(primals, tangents):
    (x, y), (dx, dy) = primals, tangents
    den = jnp.maximum(x * x + y * y, jnp.finfo(jnp.result_type(x, y)).tiny)
    return safe_angle(x, y), (dx * y - dy * x) / den


@jax.custom_jvp
def safe_rsqrt(b):
    """``1 / sqrt(max(b, 0))`` (``inf`` where ``b <= 0``); derivative 0 there."""
    return jax.lax.rsqrt(jnp.maximum(b, 0.0))


@safe_rsqrt.defjvp
def _safe_rsqrt_jvp(primals, tangents):
    (b,), (t,) = primals, tangents
    r = safe_rsqrt(b)
    ok = b > 0
    return r, jnp.where(ok, -0.5 * jnp.where(ok, r, 0.0) ** 3, 0.0) * t


@jax.custom_jvp
def right_angle(y, r):
    r"""``atan2(y, 1/r)`` for ``r = 1/sqrt(D) > 0``, as ``atan(y * r)``; ``r = inf`` (``D <= 0``,
    only from rounding past :math:`|c| = 1`) gives :math:`\pm\pi/2`.

    XLA's one-argument ``atan`` is cheaper than its ``atan2`` (``benchmarks/micro_arccos.py``
    measures both), and the angle of the GELU and erf duals then needs only the reciprocal root
    their other terms use. The derivative is atan2's, finite at ``r = inf`` too."""
    return jnp.arctan(y * r)


@right_angle.defjvp
def _right_angle_jvp(primals, tangents):
    (y, r), (dy, dr) = primals, tangents
    # x = 1/r, dx = -dr/r^2: d atan2(y, x) = (x dy - y dx)/(x^2 + y^2)
    x = jnp.where(jnp.isfinite(r), 1.0 / r, 0.0)
    den = jnp.maximum(x * x + y * y, jnp.finfo(jnp.result_type(y, r)).tiny)
    return right_angle(y, r), (x * dy + y * dr * x * x) / den


def variance_pow(b, p):
    """``b ** p`` (``p < 0``) for a product of variances ``b``; 0 where ``b == 0``."""
    zero = b == 0
    return jnp.where(zero, 0.0, _pow(jnp.where(zero, 1.0, b), p))


# --------------------------------------------------------------------------- sympy rewrites


class SafeAcos(sp.Function):
    """Marker for :func:`safe_acos` (compile-time only)."""


class SafeAsin(sp.Function):
    """Marker for :func:`safe_asin` (compile-time only)."""


class SafePow(sp.Function):
    """Marker for :func:`safe_pow` (compile-time only)."""


class VariancePow(sp.Function):
    """Marker for :func:`variance_pow` (compile-time only)."""


class SafeAngle(sp.Function):
    """Marker for :func:`safe_angle` (compile-time only)."""


class RightAngle(sp.Function):
    """Marker for :func:`right_angle` (compile-time only)."""


class RSqrt(sp.Function):
    """Marker for :func:`safe_rsqrt` (compile-time only)."""


class GramDet(sp.Function):
    """Marker for :func:`gram_det` (compile-time only)."""


class HalfPow(sp.Function):
    """Marker for ``b ** p`` with a half-integer ``p`` through native sqrt/rsqrt (compile-time only);
    same values as ``b ** p`` (a genuine infinity stays ``inf``)."""


_NONNEG = {q: sp.Dummy(q.name, nonnegative=True) for q in (Q11, Q22)}


def _correlation_parts(arg):
    r"""``(N, P)`` with ``arg == N / sqrt(P)``, ``N`` free of fractional powers and ``P`` a product
    of positive bases (``q11 q22`` for :math:`\rho`, ``(1 + q11)(1 + q22)`` for GELU's and
    ``(1 + 2q11)(1 + 2q22)`` for erf's correlation), or ``None``."""
    num, den = [], []
    for f in sp.Mul.make_args(arg):
        b, e = f.as_base_exp()
        if e.is_Rational and e.q == 2 and b.is_positive and b.free_symbols:
            # b^(m - 1/2) = b^m / sqrt(b)
            num.append(b ** (e + sp.S.Half))
            den.append(b)
        elif f.has(Q11, Q12, Q22) and any(
                x.is_Pow and not x.exp.is_integer or x.is_Function for x in sp.preorder_traversal(f)):
            return None
        else:
            num.append(f)
    if not den:
        return None
    return sp.Mul(*num), sp.Mul(*den)


def _rewrite_correlation(expr):
    r"""Angles and :math:`\sqrt{1-c^2}` of a correlation :math:`c = N/\sqrt P` from
    :math:`D = P - N^2` directly.

    :math:`c` rounds (:math:`\rho = q_{12}/\sqrt{q_{11}q_{22}}` is 1 - 2e-16 when it should be 1),
    and :math:`\arccos` and :math:`\sqrt{1-c^2}` amplify that to ~1e-8. Instead
    :math:`\arccos c = \operatorname{atan2}(\sqrt D, N)`,
    :math:`\arcsin c = \operatorname{atan2}(N, \sqrt D)` and
    :math:`(1-c^2)^p = D^p P^{-p}`: exact (:math:`\sqrt D = 0`) when the input has
    :math:`N^2 = P`, one ``atan2`` where ``asin`` costs an ``atan2`` and a ``sqrt``, and the root
    :math:`\sqrt D` is shared by the angle and every power of :math:`1 - c^2` (GELU's and erf's
    :math:`T'`). The powers :math:`P^{-p}` are plain sympy powers, so they cancel against the
    :math:`\sqrt{q_{11}}`-like factors around them.

    Where :math:`P` can vanish (:math:`\rho`, at a zero variance) the angle is
    :class:`SafeAngle` (:math:`c` taken as 0 there), and :math:`\arcsin c = \pi/2 - \arccos c`.
    """
    cands = {}
    for f in expr.atoms(sp.acos, sp.asin):
        arg = f.args[0]
        if arg in cands:
            continue
        parts = _correlation_parts(arg)
        if parts is None:
            continue
        n, p = parts
        strict = p.xreplace(_NONNEG).is_positive  # P > 0 even at zero variances
        cands[arg] = (n, p, p - n**2, bool(strict))
    if not cands:
        return expr
    subs = {}
    for arg, (n, p, det, strict) in cands.items():
        if strict:
            # sqrt(D) > 0 wherever |c| < 1, and N != 0 where D <= 0: atan(N / sqrt(D)) is exact
            angle = RightAngle(n, RSqrt(det))
            subs[sp.acos(arg)] = sp.pi / 2 - angle
            subs[sp.asin(arg)] = angle
        else:
            root = SafePow(det, sp.S.Half)
            subs[sp.acos(arg)] = SafeAngle(root, n)
            subs[sp.asin(arg)] = sp.pi / 2 - SafeAngle(root, n)
    return expr.xreplace(subs)


def _is_split_candidate(e) -> bool:
    return (e.is_Pow and e.exp.is_Rational and e.exp.q == 2 and e.base.is_Add
            and any(a.is_number for a in e.base.args)
            and any(sp.fraction(a)[1] != 1 for a in e.base.args))


def _split_fraction(e):
    r""":math:`(a - N/P)^p = (aP - N)^p\,P^{-p}` for :math:`P > 0` (:math:`(1 - c^2)^p =
    D^p P^{-p}`): exact, and :math:`(aP - N)^p` is the root the angle already uses. :math:`P^{-p}`
    is a plain sympy power, so it cancels against the :math:`\sqrt{q_{11}}`-like factors around it
    (GELU's :math:`q_{12}/(\sqrt{1+q_{11}}\sqrt{1+q_{22}}\sqrt{1-c^2})` is
    :math:`q_{12}/\sqrt D`)."""
    num, den = sp.fraction(sp.together(e.base))
    if den == 1 or den.is_number or not den.is_positive:
        return e
    return num ** e.exp * den ** (-e.exp)


def _is_variance_monomial(b) -> bool:
    if b in (Q11, Q22):
        return True
    return b.is_Mul and all(f in (Q11, Q22) or (f.is_Pow and f.base in (Q11, Q22)) for f in b.args)


def _rewrite_pow(e):
    b, p = e.base, e.exp
    if not p.is_number or p.is_integer and p.is_positive:
        return e
    if p.is_negative:
        if _is_variance_monomial(b):
            return VariancePow(b, p)
        return e
    return SafePow(b, p)


def rewrite_stable(expr: sp.Expr) -> sp.Expr:
    """The expression with the stability markers of the module docstring substituted in."""
    expr = expr.replace(lambda e: isinstance(e, sp.DiracDelta), lambda e: sp.S.Zero)
    big = {r: sp.Float(r, 17) for r in expr.atoms(sp.Rational)
           if abs(r.p) > 2**31 or abs(r.q) > 2**31}
    if big:
        expr = expr.xreplace(big)
    expr = _rewrite_correlation(expr)
    # (1 - N/P)^p with P > 0  ->  (P - N)^p P^(-p); positive powers are clamped by _rewrite_pow
    expr = expr.replace(_is_split_candidate, _split_fraction)
    expr = expr.replace(lambda e: isinstance(e, sp.acos), lambda e: SafeAcos(e.args[0]))
    expr = expr.replace(lambda e: isinstance(e, sp.asin), lambda e: SafeAsin(e.args[0]))
    expr = expr.replace(lambda e: e.is_Pow and not e.exp.is_integer and e.exp.is_number
                        or e.is_Pow and e.exp.is_negative, _rewrite_pow)
    # what is left of half-integer powers (e.g. (1 + q11)(1 + q22) - q12^2)^(-3/2) in GELU's T'):
    # sqrt/rsqrt instead of a general pow (two transcendental functions per element)
    expr = expr.replace(lambda e: e.is_Pow and e.exp.is_number and not e.exp.is_integer
                        and (2 * e.exp).is_integer and abs(e.exp) <= sp.Rational(5, 2),
                        lambda e: HalfPow(e.base, e.exp))
    return _share_roots(expr.xreplace({Q11 * Q22 - Q12**2: GramDet(Q11 * Q22, Q12)}))


def _share_roots(expr):
    r"""All half-integer powers of one base in ``expr`` from one root.

    Where a base has negative powers (or is the :math:`D` of a :class:`RightAngle`) they all come
    from :math:`r = 1/\sqrt b`: :math:`b^{-k/2} = r^k`. GELU's :math:`T` (and, the same, its
    :math:`T'`) then needs one ``rsqrt``, one ``atan`` of :math:`q_{12} r` and multiplications,
    where it had an ``asin`` (``atan2`` and ``sqrt`` in XLA) and three ``rsqrt``. Positive powers
    (:math:`b^{m+1/2} = b^m\sqrt b`, clamped at 0) share one ``sqrt`` when there are two or more.

    Per expression on purpose, not across :math:`T` and :math:`T'`: where both use the same
    root in the same form (GELU), common subexpression elimination shares it anyway; where they
    do not (erf: the clamped root in :math:`T`'s angle, :math:`D^{-1/2}` in :math:`T'`), a shared
    array is slower: XLA writes a root two outputs share to memory, while two different ones fuse
    into each output's loop (``make bench``'s fc-erf case measures it)."""
    pos, neg = {}, {}
    for e in expr.atoms(SafePow, HalfPow):
        b, p = e.args
        if p.is_Rational and p.q == 2:
            (pos if p > 0 else neg).setdefault(b, set()).add(e)
    for e in expr.atoms(RSqrt):
        neg.setdefault(e.args[0], set()).add(e)
    subs = {}
    for b, es in neg.items():
        if len(es) > 1:
            r = RSqrt(b)
            subs.update({e: r ** int(-2 * e.args[1]) for e in es if not isinstance(e, RSqrt)})
    for b, es in pos.items():
        if len(es) > 1:
            root = SafePow(b, sp.S.Half)
            subs.update({e: b ** (e.args[1] - sp.S.Half) * root for e in es})
    return expr.xreplace(subs) if subs else expr


_NAMESPACE = {
    "SafeAcos": safe_acos,
    "SafeAsin": safe_asin,
    "SafePow": safe_pow,
    "VariancePow": variance_pow,
    "SafeAngle": safe_angle,
    "GramDet": gram_det,
    "RightAngle": right_angle,
    "RSqrt": safe_rsqrt,
    "HalfPow": lambda b, p: _pow(b, float(p)),
    "erf": jsp.erf,
    "erfc": jsp.erfc,
    "erfi": None,  # filled lazily below if available
    "gamma": lambda x: jnp.exp(jsp.gammaln(x)),
    "loggamma": jsp.gammaln,
    "functools": functools,
    "reduce": functools.reduce,
    # sympy < 1.13 prints Max/Min for jax as amax/amin of a tuple, which jax 0.4.23 refuses
    "amax": lambda args, axis=0: functools.reduce(jnp.maximum, args),
    "amin": lambda args, axis=0: functools.reduce(jnp.minimum, args),
}
_NAMESPACE = {k: v for k, v in _NAMESPACE.items() if v is not None}


def _float_dtype(*args):
    dtype = jnp.result_type(*args)
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.result_type(float)
    return dtype


def _cheapest_stable(expr: sp.Expr) -> sp.Expr:
    """The stable rewrite of ``expr`` as written or multiplied out, whichever has fewer
    operations (multiplying out lets e.g. ReLU's ``sqrt(q11) sqrt(q22) sqrt(1 - rho^2)`` cancel
    to ``sqrt(q11 q22 - q12^2)``; for other duals it only grows the expression)."""
    a = rewrite_stable(expr)
    try:
        b = rewrite_stable(sp.expand_mul(expr))
    except Exception:  # noqa: BLE001 -- expansion is an optimisation only
        return a
    return b if sp.count_ops(b) < sp.count_ops(a) else a


@functools.lru_cache(maxsize=4096)
def _lambdify_many(exprs: tuple, args: tuple) -> Callable:
    stable = [_cheapest_stable(e) for e in exprs]
    return sp.lambdify(args, stable, modules=[_NAMESPACE, "jax"], cse=True)


def compile_exprs(exprs: Sequence[sp.Expr], args: Sequence[sp.Symbol]) -> Callable:
    r"""Like :func:`compile_expr` for several expressions at once, returning a tuple: common
    subexpressions (the angle, :math:`\sqrt{q_{11}q_{22}-q_{12}^2}`) are computed once."""
    exprs = tuple(sp.sympify(e) for e in exprs)
    args = tuple(args)
    raw = _lambdify_many(exprs, args)

    def fn(*xs):
        if len(xs) != len(args):
            raise TypeError(f"expected {len(args)} arguments {args}, got {len(xs)}")
        xs = [jnp.asarray(x) for x in xs]
        dtype = _float_dtype(*xs)
        xs = [x.astype(dtype) for x in xs]
        shape = jnp.broadcast_shapes(*(x.shape for x in xs))
        return tuple(jnp.broadcast_to(jnp.asarray(o).astype(dtype), shape) for o in raw(*xs))

    return fn


def compile_expr(expr: sp.Expr, args: Sequence[sp.Symbol]) -> Callable:
    """A ``jax.numpy`` function of ``args`` computing ``expr`` (cached per expression).

    The result broadcasts its arguments, keeps their floating dtype (float32 in, float32 out;
    integers become the default float), and can be jitted and differentiated.
    """
    expr = sp.sympify(expr)
    many = compile_exprs((expr,), args)

    def fn(*xs):
        return many(*xs)[0]

    fn.__doc__ = f"Compiled from the sympy expression {expr}."
    return fn
