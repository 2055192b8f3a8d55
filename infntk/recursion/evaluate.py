r"""Evaluate a printed recursion on arrays: the check that what is printed is what is computed.

The steps of :class:`~infntk.recursion.Recursion` are sympy equations for each depth's pair
covariance :math:`K` and NTK :math:`\Theta`. :func:`evaluate` walks them with an interpreter of its
own -- sums, products, powers, numbers, and the named operators, each bound to its array meaning:

* :math:`K^{(l)}, \Theta^{(l)}` are depth ``l``'s arrays; :math:`K_{11}^{(l)}, K_{22}^{(l)}` are the
  per-position variances of the two inputs, placed against the covariance they meet (the first
  and second position of each pair on the full spatial layout);
* each input's own covariance :math:`K_{11}^{(l+1)}` is the same equation at :math:`x' = x`
  (with ``x2=None`` it is the batch diagonal of :math:`K^{(l+1)}` itself);
* a covariance operator (:math:`\mathcal A`, pooling, means, concatenation) runs its array
  implementation (:mod:`infntk.layers.spatial`), a dual :math:`T_\phi` / :math:`T'_\phi` /
  :math:`m_\phi` its compiled function; a step whose layer receives the diagonal layout reads
  every state in that layout.

Nothing here calls a layer's ``kernel_map``, so agreement with ``model.kernel`` to rounding says
that the recursion printed by ``model.recursion()`` is the kernel the model computes.

Example:
    >>> import jax.numpy as jnp, numpy as np, infntk as nk
    >>> model = nk.Dense(8, b_std=0.1) >> nk.Relu() >> nk.Dense(1)
    >>> x = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4)), jnp.float32)
    >>> k = model.recursion().evaluate(x, get="ntk")
    >>> bool(jnp.allclose(k, model.kernel(x, get="ntk"), rtol=1e-5))
    True
"""
from __future__ import annotations

import jax.numpy as jnp
import sympy as sp

from ..errors import InfntkError
from ..kernel import Kernel, batch_diagonal, diagonalized, pair_broadcast
from ..results import canonicalize_get, package
from .symbols import STATE_OF

_ROLES = ("nngp", "cov1", "cov2")


class _Env:
    """Depth label -> array state, with each state's diagonal-layout view made on demand."""

    def __init__(self):
        self.states: dict = {}
        self._diag: dict = {}

    def get(self, label, diagonal: bool) -> Kernel:
        k = self.states[label]
        if not diagonal or k.diagonal_spatial or k.spatial_ndim == 0:
            return k
        if label not in self._diag:
            self._diag[label] = diagonalized(k)
        return self._diag[label]


def _variance(k: Kernel, kind: str, role: str):
    """``K11``/``K22`` of state ``k`` as they enter an equation of ``role``."""
    v1, v2 = k.variance1(), k.variance2()
    if role == "nngp":
        a, b = pair_broadcast(v1, v2, k, lead=2)
    else:
        v = v1 if role == "cov1" else v2
        a, b = pair_broadcast(v, v, k, lead=1)
    return a if kind == "K11" else b


class _Interpreter:
    def __init__(self, step, env: _Env, role: str, params: dict):
        self.step, self.env, self.role, self.params = step, env, role, params
        self.diagonal = step.full_in is False

    def state(self, label) -> Kernel:
        return self.env.get(label, self.diagonal)

    def symbol(self, s):
        if s in STATE_OF:
            label, kind = STATE_OF[s]
            k = self.state(label)
            if kind == "Θ":
                return k.ntk
            if kind == "K":
                return {"nngp": k.nngp, "cov1": k.cov1, "cov2": k.cov2 if k.cov2 is not None
                        else k.cov1}[self.role]
            return _variance(k, kind, self.role)
        if s in self.params:
            return float(sp.sympify(self.params[s]))
        raise InfntkError(f"evaluate: {self.step.name}: the symbol {s} has no value.")

    def layout_of(self, expr) -> Kernel:
        for s in sp.sympify(expr).free_symbols:
            if s in STATE_OF:
                return self.state(STATE_OF[s][0])
        raise InfntkError(f"evaluate: {self.step.name}: an operator without a state argument.")

    def __call__(self, e):
        if e.is_Number:
            return float(e)
        if e.is_Symbol:
            return self.symbol(e)
        if e.is_Add:
            out = self(e.args[0])
            for a in e.args[1:]:
                out = out + self(a)
            return out
        if e.is_Mul:
            out = self(e.args[0])
            for a in e.args[1:]:
                out = out * self(a)
            return out
        if e.is_Pow:
            base, exp = self(e.base), e.exp
            if exp == sp.Rational(1, 2):
                return jnp.sqrt(base)
            if exp == sp.Rational(-1, 2):
                return 1 / jnp.sqrt(base)
            return base ** (int(exp) if exp.is_Integer else float(exp))
        role = getattr(e.func, "role", "")
        if role == "linear":
            k = self.layout_of(e)
            batch_ndim = 2 if self.role == "nngp" else 1
            spatial = k.spatial1 if self.role != "cov2" else k.spatial2
            args = [self(a) for a in e.args]
            arg = args if len(args) > 1 else args[0]
            return e.func.payload.apply(arg, batch_ndim, spatial, k.diagonal_spatial)
        if role in ("T", "dT"):
            fn = e.func.payload.nngp_fn if role == "T" else e.func.payload.dnngp_fn
            return fn(*(self(a) for a in e.args))
        if role == "m":
            return e.func.payload.mean_fn(self(e.args[0]))
        raise InfntkError(f"evaluate: {self.step.name}: no array meaning for {e.func}.")


def _run(steps, env: _Env, x1_is_x2: bool):
    last = None
    for step in steps:
        for _, branch in step.branches:
            _run(branch, env, x1_is_x2)
        params = dict(step.params)
        k_in = env.get(step.label_in, step.full_in is False)
        nngp = _Interpreter(step, env, "nngp", params)(sp.sympify(step.nngp))
        if x1_is_x2:
            cov1, cov2 = batch_diagonal(nngp), None
        else:
            cov1 = _Interpreter(step, env, "cov1", params)(sp.sympify(step.nngp))
            cov2 = _Interpreter(step, env, "cov2", params)(sp.sympify(step.nngp))
        shape = tuple(step.shape_out) if not isinstance(step.shape_out, list) else step.shape_out
        out = Kernel(nngp=nngp, ntk=None, cov1=cov1, cov2=cov2,
                     shape1=(k_in.shape1[0],) + shape[1:], shape2=(k_in.shape2[0],) + shape[1:],
                     diagonal_spatial=_output_diagonal(step, nngp))
        env.states[step.label_out] = out
        ntk = _Interpreter(step, env, "nngp", params)(sp.sympify(step.ntk))
        env.states[step.label_out] = out.replace(ntk=jnp.broadcast_to(ntk, nngp.shape))
        last = step.label_out
    return last


def _output_diagonal(step, nngp) -> bool:
    """The layout of a step's output, read off the array it produced."""
    d = len(step.shape_out) - 2
    return d == 0 or nngp.ndim == 2 + d


def evaluate(rec, x1, x2=None, get=("nngp", "ntk")):
    """``rec``'s kernel between ``x1`` and ``x2`` (``None``: ``x1``), evaluated from its steps."""
    from .. import driver
    model = rec.model
    x1, x2 = model._check_inputs(x1, x2)
    if rec.input_shape is None or tuple(rec.input_shape[1:]) != tuple(x1.shape[1:]):
        rec = model.recursion(input_shape=(None,) + tuple(x1.shape[1:]))
    single, names = canonicalize_get(get, driver.GET_NAMES, "evaluate")
    env = _Env()
    env.states[(0,)] = driver.input_state(model, x1, x2, ("nngp", "ntk"))
    out = env.states[_run(rec.steps, env, x2 is None)]
    return package({n: getattr(out, n) for n in names}, single, names, "Kernels")
