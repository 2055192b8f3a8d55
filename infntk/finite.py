r"""No silent non-finite kernels: finding the first layer whose output overflowed.

``model.kernel`` called eagerly (concrete inputs) checks its result. When finite inputs give a
non-finite kernel -- inputs so large that :math:`x\cdot x'/d` overflows, an ``Exp(b=50)`` whose dual
:math:`e^{b^2 (q_{11} + 2 q_{12} + q_{22})/2}` leaves the floating-point range, ... -- it reruns the
recursion layer by layer, unjitted, and raises :class:`~infntk.errors.InfntkError` naming the first
layer (and its position) whose state is not finite, instead of returning NaN or inf.

Under a caller's own ``jax.jit`` the values are not known while tracing, so nothing can be checked
there; call :func:`check_finite` on the result outside the jitted function.

Example:
    >>> import jax.numpy as jnp, infntk as nk
    >>> k = (nk.Dense(4) >> nk.Relu()).kernel(jnp.ones((2, 3)), get="nngp")
    >>> check_finite(k) is k
    True
"""
from __future__ import annotations

import jax
import numpy as np

from .errors import InfntkError
from .kernel import Kernel
from .ops import ArrayOps

__all__ = ["check_finite", "diagnose"]

_FIELDS = ("nngp", "ntk", "cov1", "cov2")


def _bad_fields(k) -> list:
    return [n for n in _FIELDS if getattr(k, n, None) is not None
            and not bool(np.all(np.isfinite(np.asarray(getattr(k, n)))))]


def check_finite(result, where: str = "kernel"):
    """``result`` itself if every array in it is finite, else :class:`InfntkError` saying which.

    ``result``: an array, a named tuple of arrays, or a :class:`~infntk.kernel.Kernel`.
    """
    if isinstance(result, Kernel):
        bad = _bad_fields(result)
    elif hasattr(result, "_fields"):
        bad = [n for n in result._fields if not bool(np.all(np.isfinite(np.asarray(getattr(result, n)))))]
    else:
        bad = [] if bool(np.all(np.isfinite(np.asarray(result)))) else ["the result"]
    if bad:
        raise InfntkError(f"{where}: NaN or infinite values in {', '.join(bad)}.")
    return result


class _Checking(ArrayOps):
    """Array operations that stop at the first layer whose state is not finite."""

    def after(self, step, k_in, k_out):
        k_out = super().after(step, k_in, k_out)
        bad = _bad_fields(k_out)
        if bad:
            where = "" if step.position is None else f"layer #{step.position} "
            raise InfntkError(
                f"{where}{step.layer.label}: its output is not finite ({', '.join(bad)} contain NaN "
                f"or inf) although its input was: the values leave the {k_out.nngp.dtype} range here "
                f"(scale the inputs down{_or_float64(k_out)}).")
        return k_out


def _or_float64(k) -> str:
    return ", or use float64" if np.dtype(k.nngp.dtype).itemsize < 8 else ""


def diagnose(model, x1, x2, get) -> None:
    """Rerun ``model``'s recursion eagerly and raise at the first non-finite layer (see above)."""
    from . import driver
    with jax.disable_jit():
        k = driver.input_state(model, x1, x2, get)
        bad = _bad_fields(k)
        if bad:
            raise InfntkError(
                f"{model.label}: the inputs' covariance x·x'/d is not finite ({', '.join(bad)}): "
                f"the inputs are too large for {k.nngp.dtype} (scale them down).")
        driver.fold(model, k, _Checking(), trim=True)
