r"""Fast, accurate elementwise ``arccos`` for the kernel recursions.

XLA's CPU ``acos`` is lowered through ``atan2(sqrt((1 - x)(1 + x)), x)``-style generic code and costs
tens of nanoseconds per element, far more than the multiply-adds around it in a ReLU dual. This is
the classical fdlibm / FreeBSD msun algorithm (``e_acos.c``, ``e_acosf.c``) written in
``jax.numpy`` with a branch-free ``where`` select:

.. math::
    \arccos x = \begin{cases}
      \tfrac\pi2 - \big(x + x\,R(x^2)\big) & |x| \le \tfrac12,\\
      2\big(s + s\,R(z)\big),\ z = \tfrac{1-x}2,\ s = \sqrt z & x > \tfrac12,\\
      \pi - 2\big(s + s\,R(z)\big),\ z = \tfrac{1+x}2 & x < -\tfrac12,
    \end{cases}

where :math:`\arcsin t = t + t R(t^2)` on :math:`|t| \le \tfrac12`, :math:`R = P/Q` a minimax
rational function (degree 6/4 in :math:`z` for float64, 3/1 for float32), :math:`\pi/2` split into a
high and a low part, and, for :math:`x > \tfrac12`, :math:`s` split into a head with trailing
mantissa bits cleared plus a correction :math:`(z - d^2)/(s + d)` so that the final doubling loses
nothing. Maximal error is below 1 ulp in float32 and float64 (0.90 / 0.89 ulp measured; XLA's own
``acos``: 2.2 / 1.5 ulp), checked on a dense float32 sweep (every 257th float in [-1, 1] plus every
float near the branch points; all 2.1e9 floats with ``INFNTK_FULL=1``) and 4e6 float64 points
against a long-double reference (``tests/dual/test_fastmath.py``). Faster than
``jnp.arccos`` on CPU (``benchmarks/micro_arccos.py`` measures by how much).

Inputs outside :math:`[-1, 1]` give NaN (as ``jnp.arccos``); callers clip first.

Example:
    >>> import jax.numpy as jnp
    >>> round(float(fast_arccos(jnp.float32(0.3))), 6)
    1.266104
"""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

__all__ = ["fast_arccos", "fast_angle"]

# float64: FreeBSD msun e_acos.c (Sun Microsystems fdlibm)
_D = dict(
    pio2_hi=1.57079632679489655800e+00, pio2_lo=6.12323399573676603587e-17,
    pi=3.14159265358979311600e+00,
    p=(1.66666666666666657415e-01, -3.25565818622400915405e-01, 2.01212532134862925881e-01,
       -4.00555345006794114027e-02, 7.91534994289814532176e-04, 3.47933107596021167570e-05),
    q=(-2.40339491173441421878e+00, 2.02094576023350569471e+00, -6.88283971605453293030e-01,
       7.70381505559019352791e-02),
    mask=0xFFFFFFFF00000000, itype=jnp.uint64)
# float32: FreeBSD msun e_acosf.c (reduced-degree minimax)
_F = dict(
    pio2_hi=1.5707962513e+00, pio2_lo=7.5497894159e-08, pi=3.1415925026e+00,
    p=(1.6666586697e-01, -4.2743422091e-02, -8.6563630030e-03),
    q=(-7.0662963390e-01,),
    mask=0xFFFFF000, itype=jnp.uint32)


def _horner(z, coefs):
    acc = jnp.asarray(coefs[-1], z.dtype)
    for c in coefs[-2::-1]:
        acc = acc * z + c
    return acc


def fast_arccos(x):
    """``arccos(x)`` for float32/float64 ``x`` in [-1, 1] (see the module docstring)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if x.dtype not in (jnp.float32, jnp.float64):
        return jnp.arccos(x)
    c = _D if x.dtype == jnp.float64 else _F
    dt = x.dtype
    one, half = jnp.asarray(1.0, dt), jnp.asarray(0.5, dt)

    def R(z):
        return z * _horner(z, c["p"]) / (one + z * _horner(z, c["q"]))

    ax = jnp.abs(x)
    small = ax <= half
    # |x| <= 1/2
    z0 = x * x
    r_small = c["pio2_hi"] - (x - (c["pio2_lo"] - x * R(z0)))
    # |x| > 1/2: z = (1 - |x|)/2, s = sqrt(z)
    z = jnp.where(small, half, (one - ax) * half)
    s = jnp.sqrt(z)
    r = R(z)
    neg = c["pi"] - 2.0 * (s + (r * s - c["pio2_lo"]))
    df = lax.bitcast_convert_type(
        lax.bitcast_convert_type(s, c["itype"]) & jnp.asarray(c["mask"], c["itype"]), dt)
    corr = (z - df * df) / jnp.where(z > 0, s + df, one)  # z = 0 at x = 1
    pos = 2.0 * (df + (r * s + corr))
    return jnp.where(small, r_small, jnp.where(x > 0, pos, neg))


def fast_angle(root, y):
    r"""The angle :math:`\theta = \operatorname{atan2}(r, y) \in [0, \pi]` for :math:`r \ge 0`, fast.

    In the duals :math:`r = \sqrt{q_{11}q_{22} - q_{12}^2}` and :math:`y = q_{12}`, so
    :math:`\theta = \arccos\rho`. It is evaluated like :func:`fast_arccos`, but on the branches
    :math:`|\rho| > 1/2` the reduced argument :math:`z = (1 - |\rho|)/2` is formed without
    cancellation as :math:`z = r^2 / (2 g (g + |y|))` with :math:`g = \sqrt{r^2 + y^2}`, so
    :math:`\theta` is exactly 0 (or :math:`\pi`) when :math:`r = 0`, and accurate near there
    (no :math:`\sqrt{\epsilon}` loss from a rounded :math:`\rho`). ``r = y = 0`` gives
    :math:`\pi/2` (independent zero-variance inputs).

    Example:
        >>> import jax.numpy as jnp
        >>> float(fast_angle(jnp.float64(0.0), jnp.float64(2.0)))
        0.0
    """
    root, y = jnp.asarray(root), jnp.asarray(y)
    dt = jnp.result_type(root, y)
    if dt not in (jnp.float32, jnp.float64):
        return jnp.arctan2(root, y)
    root, y = root.astype(dt), y.astype(dt)
    c = _D if dt == jnp.float64 else _F
    one, half = jnp.asarray(1.0, dt), jnp.asarray(0.5, dt)

    def R(z):
        return z * _horner(z, c["p"]) / (one + z * _horner(z, c["q"]))

    det = root * root
    g = jnp.sqrt(det + y * y)
    zero_g = g == 0                                 # False for NaN: NaN in, NaN out
    safe_g = jnp.where(zero_g, one, g)
    x = jnp.where(zero_g, 0.0, y / safe_g)          # rho
    ay = jnp.abs(y)
    small = jnp.abs(x) <= half
    z = jnp.where(small, half, det / (2.0 * safe_g * jnp.where(small, one, safe_g + ay)))
    # one evaluation of the rational function serves both branches
    r_any = R(jnp.where(small, x * x, z))
    r_small = c["pio2_hi"] - (x - (c["pio2_lo"] - x * r_any))
    s = jnp.sqrt(z)
    r = r_any
    neg = c["pi"] - 2.0 * (s + (r * s - c["pio2_lo"]))
    df = lax.bitcast_convert_type(
        lax.bitcast_convert_type(s, c["itype"]) & jnp.asarray(c["mask"], c["itype"]), dt)
    corr = (z - df * df) / jnp.where(z > 0, s + df, one)
    pos = 2.0 * (df + (r * s + corr))
    return jnp.where(small, r_small, jnp.where(x > 0, pos, neg))
