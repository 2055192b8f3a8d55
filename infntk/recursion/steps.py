r"""Walk a model and write down its kernel recursion, one :class:`Step` per layer.

The state of the recursion at depth :math:`l` is the covariance :math:`K^{(l)}` between the two
inputs, their variances :math:`K_{11}^{(l)}, K_{22}^{(l)}` (the *variance tracks*, which follow the
same maps with both arguments equal) and the NTK :math:`\Theta^{(l)}`. The walk below mirrors the
layers' ``kernel_map`` exactly -- including infntk's handling of non-Gaussian features (a second
nonlinearity is composed with the first, :math:`T_{\psi\circ\phi}`, and evaluated against the last
Gaussian pre-activation; see :mod:`infntk.layers.nonlinear`) and of sums of branches (independent
branches add, with the product of channel means as a cross term; elementwise branches of the same
pre-activation add their maps).

One function, :func:`walk`, serves twice: on fresh symbols :math:`K^{(l)}, \Theta^{(l)}` per layer
with named operators (:math:`T_\phi`, :math:`\mathcal A[\cdot]`, ...) it produces the printed
recursion; on the input statistics with the duals' sympy expressions substituted it produces the
closed form (:mod:`infntk.recursion.closed_form`).

Example:
    >>> import infntk as nk
    >>> step = (nk.Dense(4, W_std=2.0) >> nk.Erf()).recursion()[1]
    >>> step.kind, step.note, str(step.equations[1])
    ('activation', 'dual: closed-form', "Eq(Θ⁽²⁾, Θ⁽¹⁾*T'_{erf(1, 1, 0)}(K₁₁⁽¹⁾, K⁽¹⁾, K₂₂⁽¹⁾))")
"""
from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Optional

import sympy as sp

from ..errors import InfntkError
from ..layers import (AvgPool, Concat, Conv, Dense, Elementwise, FanInConcat, FanInSum, FanOut,
                      Flatten, GlobalAvgPool, Identity, LayerNorm, Parallel, Serial, Sum)
from ..layers import nonlinear
from ..layers.branching import has_linear
from ..layers.dense import out_width
from ..dual import Q11, Q12, Q22
from .symbols import XX, XY, YY, operator, param_symbol, state_symbols

__all__ = ["State", "Step", "walk", "NotSymbolic"]

_uids = itertools.count()
_LETTERS = "abcdefghijklmnopqrstuvwxyz"


class NotSymbolic(InfntkError):
    """The closed form does not exist symbolically (a quadrature dual, a spatial layer, ...)."""


@dataclasses.dataclass(frozen=True)
class State:
    """Symbolic kernel state: ``k11, k12, k22`` (variances and covariance) and ``t12`` (NTK)."""

    k11: Any
    k12: Any
    k22: Any
    t12: Any
    channels: Any = None
    spatial: Optional[bool] = None
    is_gaussian: bool = True
    is_input: bool = False
    pre: Optional["State"] = None
    feature: Any = None
    label: tuple = ()
    uid: int = dataclasses.field(default_factory=lambda: next(_uids))

    def new(self, **changes) -> "State":
        """A new state (new identity) with the given fields changed."""
        changes.setdefault("is_input", False)
        changes.setdefault("uid", next(_uids))
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class Step:
    r"""One layer of the recursion: :math:`K^{(\mathrm{out})} = ` ``nngp``,
    :math:`\Theta^{(\mathrm{out})} = ` ``ntk``, in the symbols of depth ``label_in``.

    Attributes:
        layer: the layer object.
        kind: ``'dense'``, ``'conv'``, ``'activation'``, ``'layernorm'``, ``'avgpool'``,
            ``'global_avg_pool'``, ``'flatten'``, ``'identity'``, ``'sum'``, ``'concat'``,
            ``'fanout'``, ``'parallel'``, ``'fan_in_sum'``, ``'fan_in_concat'``.
        label_in, label_out: depth labels, e.g. ``(1,)`` and ``(2,)``; inside branch ``b`` of the
            step from depth 3: ``(3, 'b', 1)``, ...
        nngp, ntk: sympy right-hand sides (a ``sympy.Tuple`` for list-valued states).
        params: ``((symbol, value), ...)`` -- the hyperparameters the equations are written in.
        defs: ``((text_lhs, latex_lhs, expr_or_None), ...)`` -- the operators' definitions, e.g. the
            dual :math:`T_\phi(q_{11}, q_{12}, q_{22})` (``None`` when only numeric).
        note: e.g. ``'dual: closed-form'``, ``'dual: quadrature (no symbolic form)'``.
        branches: ``((letter, steps), ...)`` for branching layers.
    """

    layer: Any
    kind: str
    label_in: tuple
    label_out: tuple
    nngp: Any
    ntk: Any
    params: tuple = ()
    defs: tuple = ()
    note: str = ""
    branches: tuple = ()

    @property
    def name(self) -> str:
        """The layer's short name, e.g. ``Dense(512)``."""
        if isinstance(self.layer, (Sum, Concat, Parallel)):
            return type(self.layer).__name__
        try:
            return self.layer.label
        except Exception:  # pragma: no cover - labels are plain properties
            return type(self.layer).__name__

    @property
    def equations(self) -> tuple:
        """``(Eq(K_out, nngp), Eq(Theta_out, ntk))`` as sympy equations."""
        _, k, _, th = state_symbols(self.label_out)
        return sp.Eq(k, self.nngp, evaluate=False), sp.Eq(th, self.ntk, evaluate=False)


# ----------------------------------------------------------------------------------- context


def exact(value) -> sp.Expr:
    """A hyperparameter as an exact sympy number (floats through their shortest decimal repr)."""
    if isinstance(value, sp.Basic):
        return value
    if isinstance(value, bool):
        return sp.Integer(int(value))
    if isinstance(value, int):
        return sp.Integer(value)
    return sp.Rational(repr(float(value)))


class Ctx:
    """How the walk evaluates: ``display`` (named operators, fresh symbols per layer, steps
    recorded) or closed (duals substituted; hyperparameters ``'numeric'`` or ``'symbolic'``)."""

    def __init__(self, display: bool, params: str = "numeric"):
        if params not in ("numeric", "symbolic"):
            raise InfntkError(f"closed_form: params must be 'numeric' or 'symbolic', got {params!r}.")
        self.display = display
        self.params_mode = params
        self.parameters: dict = {}
        self._step_params: list = []

    # hyperparameters
    def param(self, name: str, value, label: tuple):
        if self.display:
            s = param_symbol(name)
            self._step_params.append((s, value))
            return s
        if self.params_mode == "symbolic":
            s = param_symbol(name, label)
            self.parameters[s] = value
            return s
        return exact(value)

    def fan_in(self, value):
        """The fan-in ``n`` of a standard-parameterized layer (a number or the symbol ``d``)."""
        if self.display:
            s = param_symbol("n")
            self._step_params.append((s, value))
            return s
        if value is None:
            raise NotSymbolic("closed_form: the fan-in of a standard-parameterized layer is unknown "
                              "here (pass input_shape to recursion()).")
        return param_symbol("d") if value == "d" else exact(value)

    def take_params(self) -> tuple:
        out, self._step_params = tuple(self._step_params), []
        return out

    # operators
    def op(self, layer, text: str, latex: str, arg):
        if not self.display:
            raise NotSymbolic(f"closed_form: {layer.label} acts on the spatial covariance; the closed "
                              "form in (xx, xy, yy) exists only for fully-connected models.")
        return operator(text, latex, linear=True)(arg)

    def T(self, feat, q11, q12, q22):
        if isinstance(feat, nonlinear.NormalisedFeature):
            (m1, s1), (m2, s2) = self._scale(feat.inner, q11), self._scale(feat.inner, q22)
            return (self.T(feat.inner, q11, q12, q22) - m1 * m2) / (s1 * s2)
        if self.display:
            return _dual_ops(feat)[0](q11, q12, q22)
        if feat.nngp is None:
            raise NotSymbolic(f"closed_form: the dual of {feat.name or feat.phi} is computed by "
                              f"{feat.method}; it has no symbolic form.")
        return feat.nngp.xreplace({Q11: q11, Q12: q12, Q22: q22})

    def dT(self, feat, q11, q12, q22):
        if isinstance(feat, nonlinear.NormalisedFeature):
            (_, s1), (_, s2) = self._scale(feat.inner, q11), self._scale(feat.inner, q22)
            return self.dT(feat.inner, q11, q12, q22) / (s1 * s2)
        if self.display:
            return _dual_ops(feat)[1](q11, q12, q22)
        if feat.dnngp is None:
            raise NotSymbolic(f"closed_form: the derivative dual of {feat.name or feat.phi} is "
                              f"computed by {feat.method}; it has no symbolic form.")
        return feat.dnngp.xreplace({Q11: q11, Q12: q12, Q22: q22})

    def mean(self, feat, q):
        if isinstance(feat, nonlinear.NormalisedFeature):
            return sp.S.Zero
        if self.display:
            return _dual_ops(feat)[2](q)
        if feat.mean is None:
            raise NotSymbolic(f"closed_form: the mean of {feat.name or feat.phi} is computed by "
                              "quadrature; it has no symbolic form.")
        return sp.sympify(feat.mean).xreplace({Q11: q})

    def _scale(self, feat, q):
        m = self.mean(feat, q)
        return m, sp.sqrt(self.T(feat, q, q, q) - m**2)

    def relabel(self, out, label: tuple):
        """Closed mode: the same state, labelled with its depth (names symbolic parameters)."""
        if isinstance(out, list):
            return [self.relabel(o, (*label, _LETTERS[i])) for i, o in enumerate(out)]
        return dataclasses.replace(out, label=label)

    def fresh(self, out, label: tuple):
        """Display mode: the output state re-expressed in the fresh symbols of ``label``."""
        if isinstance(out, list):
            return [self.fresh(o, (*label, _LETTERS[i])) for i, o in enumerate(out)]
        k11, k, k22, th = state_symbols(label)
        return dataclasses.replace(out, k11=k11, k12=k, k22=k22, t12=th, label=label)


def feature_name(feat) -> str:
    """Short name of an elementwise feature, used as the subscript of its dual ``T``."""
    if isinstance(feat, nonlinear.NormalisedFeature):
        return "LN∘" + feature_name(feat.inner)
    name = feat.name or str(feat.phi)
    return name if len(name) <= 24 else "φ"


def _latex_name(name: str) -> str:
    return r"\mathrm{" + name.replace("_", r"\_").replace("∘", r"}\circ\mathrm{") \
        .replace("φ", r"}\phi\mathrm{") + "}"


def _sub(name: str) -> str:
    """``name`` as a text subscript: braced unless it is a plain identifier."""
    return name if name.replace("_", "").isalnum() else "{" + name + "}"


def _dual_ops(feat):
    n = _sub(feature_name(feat))
    ln = _latex_name(feature_name(feat))
    return (operator(f"T_{n}", f"T_{{{ln}}}"), operator(f"T'_{n}", f"T'_{{{ln}}}"),
            operator(f"m_{n}", f"m_{{{ln}}}"))


def feature_defs(feat) -> tuple:
    """Definitions printed with an activation step: the dual and derivative dual (or the route)."""
    if isinstance(feat, nonlinear.NormalisedFeature):
        inner = feature_defs(feat.inner)
        n = feature_name(feat.inner)
        m = (f"m_{_sub(n)}(q)", f"m_{{{_latex_name(n)}}}(q)",
             None if getattr(feat.inner, "mean", None) is None
             else sp.sympify(feat.inner.mean).xreplace({Q11: sp.Symbol("q", positive=True)}))
        return inner + (m,)
    n = feature_name(feat)
    ln = _latex_name(n)
    n = _sub(n)
    args_t, args_l = "(q₁₁, q₁₂, q₂₂)", "(q_{11}, q_{12}, q_{22})"
    out = []
    if n == "φ" or n == "{φ}":
        out.append(("φ(x)", r"\phi(x)", feat.phi))
    out.append((f"T_{n}{args_t}", f"T_{{{ln}}}{args_l}", feat.nngp))
    out.append((f"T'_{n}{args_t}", f"T'_{{{ln}}}{args_l}", feat.dnngp))
    return tuple(out)


def feature_note(feat) -> str:
    if isinstance(feat, nonlinear.NormalisedFeature):
        return "LayerNorm of a non-Gaussian feature; " + feature_note(feat.inner)
    note = f"dual: {feat.method}"
    if feat.method == "quadrature":
        note += " (Gauss–Hermite, no symbolic form)"
    elif feat.method == "hermite":
        degree = sp.Poly(feat.nngp, Q12).degree() if feat.nngp is not None else "?"
        note += f" (truncated at degree {degree}"
        if feat.truncation_error is not None:
            note += f", error ≤ {feat.truncation_error:.2g}"
        note += ")"
    return note


# ----------------------------------------------------------------------------------- the walk


def input_state(input_shape, ctx: Ctx, label=(0,)) -> State:
    """The state of the raw inputs: :math:`K = x\\cdot x'/d` (statistics ``xx, xy, yy``), Θ = 0."""
    channels = "d" if input_shape is None else int(input_shape[-1])
    spatial = None if input_shape is None else len(input_shape) > 2
    if ctx.display:
        k11, k, k22, th = state_symbols(label)
        return State(k11, k, k22, th, channels=channels, spatial=spatial, is_input=True,
                     label=label)
    return State(XX, XY, YY, sp.S.Zero, channels=channels, spatial=spatial, is_input=True,
                 label=label)


def walk(model, state: State, ctx: Ctx, prefix: tuple = ()):
    """Run ``model`` on the symbolic ``state``; returns ``(out_state, steps)``."""
    layers = _flat(model)
    steps = []
    prev = None
    for j, layer in enumerate(layers):
        label_in = state[0].label[:-1] if isinstance(state, list) else state.label
        label_out = (*prefix, j + 1) if prefix else (j + 1,)
        try:
            out, kind, extra = _layer(layer, state, ctx, label_out, prev)
        except NotSymbolic:
            raise
        except InfntkError as e:  # name the position, as the layers' own errors do
            msg = str(e)
            raise InfntkError(msg if msg.startswith("recursion") else f"recursion: layer #{j} {msg}") \
                from None
        if ctx.display:
            params = ctx.take_params()
            nngp, ntk = _rhs(out, layer, label_out)
            out = ctx.fresh(out, label_out)
            steps.append(Step(layer=layer, kind=kind, label_in=label_in, label_out=label_out,
                              nngp=nngp, ntk=ntk, params=params, **extra))
        else:
            out = ctx.relabel(out, label_out)
        state, prev = out, layer
    return state, tuple(steps)


def _flat(model) -> tuple:
    if isinstance(model, Serial):
        return tuple(l for m in model.layers for l in _flat(m))
    return (model,)


def _rhs(out, layer, label_out):
    if isinstance(out, list):
        return sp.Tuple(*(o.k12 for o in out)), sp.Tuple(*(o.t12 for o in out))
    nngp, ntk = out.k12, out.t12
    if isinstance(layer, (Dense, Conv)) and layer.parameterization == "ntk" and not nngp.is_Atom:
        ntk = ntk.subs(nngp, state_symbols(label_out)[1])  # Θ' = K' + σ_w² Θ, K' by its name
    return nngp, ntk


def _layer(layer, s, ctx: Ctx, label_out: tuple, prev):
    """``(out_state, kind, extra Step fields)`` for one layer."""
    if isinstance(s, list) and not isinstance(layer, (Parallel, FanInSum, FanInConcat)):
        raise layer.error("expects a single input here, got a list (after FanOut).")
    if isinstance(layer, Dense):
        return _dense(layer, s, ctx, label_out), "dense", {}
    if isinstance(layer, Conv):
        return _conv(layer, s, ctx, label_out), "conv", {}
    if isinstance(layer, Elementwise):
        base, inner = nonlinear.source_and_feature(s)
        if base is None:
            raise layer.error("its input is neither Gaussian nor an elementwise function of one "
                              "Gaussian pre-activation; no infinite-width closed form is known.")
        feat = layer.dual if inner is None else nonlinear.compose(layer, inner)
        out = _evaluate(feat, base, s, ctx)
        return out, "activation", {"defs": feature_defs(feat), "note": feature_note(feat)}
    if isinstance(layer, LayerNorm):
        return _layernorm(layer, s, ctx)
    if isinstance(layer, Identity):
        return s, "identity", {}
    if isinstance(layer, AvgPool):
        return _avgpool(layer, s, ctx), "avgpool", {}
    if isinstance(layer, GlobalAvgPool):
        return _gap(layer, s, ctx), "global_avg_pool", {}
    if isinstance(layer, Flatten):
        return _flatten(layer, s, ctx), "flatten", {}
    if isinstance(layer, (Sum, Concat)):
        outs, branches = [], []
        for i, b in enumerate(layer.branches):
            o, st = walk(b, s, ctx, (*_in_label(s), _LETTERS[i]))
            outs.append(o)
            branches.append((_LETTERS[i], st))
        if isinstance(layer, Sum):
            out = _sum(layer, outs, [has_linear(b) for b in layer.branches], ctx)
            return out, "sum", {"branches": tuple(branches), **_merged_defs(out, outs)}
        return _concat(layer, outs, ctx), "concat", {"branches": tuple(branches)}
    if isinstance(layer, FanOut):
        return [s] * layer.num, "fanout", {}
    if isinstance(layer, Parallel):
        layer._check(s)
        outs, branches = [], []
        for i, (b, si) in enumerate(zip(layer.layers, s)):
            o, st = walk(b, si, ctx, _branch_prefix(si, i))
            outs.append(o)
            branches.append((_LETTERS[i], st))
        return outs, "parallel", {"branches": tuple(branches)}
    if isinstance(layer, FanInSum):
        if not isinstance(s, list):
            raise layer.error("expects a list of inputs (after FanOut and parallel).")
        linear = list(prev.branch_has_linear) if isinstance(prev, Parallel) else None
        out = _sum(layer, s, linear, ctx)
        return out, "fan_in_sum", _merged_defs(out, s)
    if isinstance(layer, FanInConcat):
        if not isinstance(s, list):
            raise layer.error("expects a list of inputs (after FanOut and parallel).")
        if layer.axis != -1 and not all(si.spatial is False for si in s):
            return _spatial_concat(layer, s, ctx), "fan_in_concat", {}
        return _concat(layer, s, ctx), "fan_in_concat", {}
    # an unknown layer: an opaque operator
    name = type(layer).__name__
    out = s.new(k11=ctx.op(layer, name, rf"\mathrm{{{name}}}", s.k11),
                k12=ctx.op(layer, name, rf"\mathrm{{{name}}}", s.k12),
                k22=ctx.op(layer, name, rf"\mathrm{{{name}}}", s.k22),
                t12=ctx.op(layer, name, rf"\mathrm{{{name}}}", s.t12), pre=None, feature=None)
    return out, "opaque", {"note": "no symbolic recursion known for this layer"}


def _merged_defs(out: State, branches) -> dict:
    """Definitions for a sum whose elementwise branches were merged into one dual."""
    if out.feature is None or any(b.feature is out.feature for b in branches):
        return {}
    return {"defs": feature_defs(out.feature), "note": feature_note(out.feature)}


def _in_label(s) -> tuple:
    return s.label


def _branch_prefix(s: State, i: int) -> tuple:
    """Labels inside branch ``i`` fed ``s``: a list element is already lettered, e.g. ``(2, 'a')``."""
    if s.label and isinstance(s.label[-1], str):
        return s.label
    return (*s.label, _LETTERS[i])


def _closed_fc(layer, s: State, ctx: Ctx):
    """Closed forms are in (xx, xy, yy): a dense layer on spatial inputs acts per position."""
    if not ctx.display and s.spatial:
        raise NotSymbolic(f"closed_form: {layer.label} acts on features with spatial axes; the "
                          "closed form in (xx, xy, yy) needs (N, d) inputs or a Flatten first.")


def _dense(layer: Dense, s: State, ctx: Ctx, label) -> State:
    _closed_fc(layer, s, ctx)
    w = ctx.param("σ_w", layer.W_std, label)
    b = None if layer.b_std is None else ctx.param("σ_b", layer.b_std, label)
    w2, b2 = w**2, (sp.S.Zero if b is None else b**2)
    nngp = w2 * s.k12 + b2
    if layer.parameterization == "ntk":
        ntk = nngp + w2 * s.t12
    else:
        ntk = _over_s0(layer, ctx.fan_in(s.channels)) * s.k12 + w2 * s.t12 + (0 if b is None else 1)
    return s.new(k11=w2 * s.k11 + b2, k12=nngp, k22=w2 * s.k22 + b2, t12=ntk,
                 channels=out_width(layer, layer.out_dim), is_gaussian=True, pre=None, feature=None)


def _over_s0(layer, fan_in):
    """The standard parameterization's NTK width :math:`n/s_0` (``s_0 = layer.s[0]``)."""
    return fan_in if layer.s[0] == 1 else fan_in / sp.Integer(layer.s[0])


def _fmt_tuple(t) -> str:
    return str(t[0]) if len(set(t)) == 1 else "(" + ",".join(map(str, t)) + ")"


def _conv(layer: Conv, s: State, ctx: Ctx, label) -> State:
    fs = "×".join(map(str, layer.filter_shape))
    st = _fmt_tuple(layer.strides)
    text = f"A_{{{fs},s={st},{layer.padding}}}"
    latex = (r"\mathcal{A}_{" + r"\times ".join(map(str, layer.filter_shape))
             + rf",\,s={st},\,\mathrm{{{layer.padding}}}}}")
    A = lambda a: ctx.op(layer, text, latex, a)  # noqa: E731
    w = ctx.param("σ_w", layer.W_std, label)
    b = None if layer.b_std is None else ctx.param("σ_b", layer.b_std, label)
    w2, b2 = w**2, (sp.S.Zero if b is None else b**2)
    nngp = w2 * A(s.k12) + b2
    if layer.parameterization == "ntk":
        ntk = nngp + w2 * A(s.t12)
    else:
        size = math.prod(layer.filter_shape)
        fan = None if s.channels is None else (
            f"{s.channels}·{size}" if isinstance(s.channels, str) else s.channels * size)
        ntk = _over_s0(layer, ctx.fan_in(fan)) * A(s.k12) + w2 * A(s.t12) + (0 if b is None else 1)
    return s.new(k11=w2 * A(s.k11) + b2, k12=nngp, k22=w2 * A(s.k22) + b2, t12=ntk,
                 channels=out_width(layer, layer.out_chan), spatial=True, is_gaussian=True, pre=None, feature=None)


def _avgpool(layer: AvgPool, s: State, ctx: Ctx) -> State:
    ws = "×".join(map(str, layer.window_shape))
    st = _fmt_tuple(layer.strides)
    text = f"pool_{{{ws},s={st},{layer.padding}}}"
    latex = (r"\mathrm{pool}_{" + r"\times ".join(map(str, layer.window_shape))
             + rf",\,s={st},\,\mathrm{{{layer.padding}}}}}")
    P = lambda a: ctx.op(layer, text, latex, a)  # noqa: E731
    return s.new(k11=P(s.k11), k12=P(s.k12), k22=P(s.k22), t12=P(s.t12), spatial=True,
                 is_gaussian=s.is_gaussian, pre=None, feature=None)


def _gap(layer, s: State, ctx: Ctx) -> State:
    M = lambda a: ctx.op(layer, "mean_{s,s'}", r"\mathrm{mean}_{s,s'}", a)  # noqa: E731
    return s.new(k11=M(s.k11), k12=M(s.k12), k22=M(s.k22), t12=M(s.t12), spatial=False,
                 is_gaussian=s.is_gaussian, pre=None, feature=None)


def _flatten(layer, s: State, ctx: Ctx) -> State:
    if s.spatial is False or (not ctx.display and s.is_input):
        # no spatial axes (or the raw input, whose statistics are those of the flattened vector)
        return s if s.spatial is False else s.new(spatial=False, is_input=True)
    M = lambda a: ctx.op(layer, "mean_s", r"\mathrm{mean}_{s}", a)  # noqa: E731
    return s.new(k11=M(s.k11), k12=M(s.k12), k22=M(s.k22), t12=M(s.t12), spatial=False,
                 channels=None, is_gaussian=s.is_gaussian, pre=None, feature=None)


def _evaluate(feat, base: State, s: State, ctx: Ctx) -> State:
    """The state of ``feat(h)`` for the Gaussian pre-activation state ``base`` of ``h``."""
    T = lambda a, b, c: ctx.T(feat, a, b, c)  # noqa: E731
    return base.new(k11=T(base.k11, base.k11, base.k11), k12=T(base.k11, base.k12, base.k22),
                    k22=T(base.k22, base.k22, base.k22),
                    t12=ctx.dT(feat, base.k11, base.k12, base.k22) * base.t12,
                    channels=s.channels, spatial=s.spatial, is_gaussian=False, pre=base,
                    feature=feat)


def _layernorm(layer: LayerNorm, s: State, ctx: Ctx):
    axis = layer.axis if isinstance(layer.axis, tuple) else (layer.axis,)
    over_space = len(axis) > 1 or axis[0] not in (-1,)
    if s.pre is not None:
        if over_space and s.spatial is not False:
            raise layer.error("after a nonlinearity only normalisation over the channel axis alone "
                              "is supported.")
        feat = nonlinear.NormalisedFeature(s.feature)
        out = _evaluate(feat, s.pre, s, ctx)
        return out, "layernorm", {"defs": feature_defs(feat), "note": feature_note(feat)}
    if not s.is_gaussian:
        raise layer.error("its input is not Gaussian and not an elementwise function of one "
                          "Gaussian pre-activation; no closed form is known.")
    v1, v2 = s.k11, s.k22
    if over_space and s.spatial is not False:
        v1 = ctx.op(layer, "mean_s", r"\mathrm{mean}_{s}", v1)
        v2 = ctx.op(layer, "mean_s", r"\mathrm{mean}_{s}", v2)
    norm = sp.sqrt(v1 * v2)
    return s.new(k11=s.k11 / v1, k12=s.k12 / norm, k22=s.k22 / v2, t12=s.t12 / norm), \
        "layernorm", {}


def _means(s: State, ctx: Ctx):
    if s.pre is not None:
        return ctx.mean(s.feature, s.pre.k11), ctx.mean(s.feature, s.pre.k22)
    if s.is_gaussian:
        return None
    raise InfntkError("cannot add these branches: one ends in a non-Gaussian feature whose channel "
                      "mean is unknown, and the other's mean is not zero.")


def _add_independent(layer, a: State, b: State, ctx: Ctx) -> State:
    k11, k12, k22, t12 = a.k11 + b.k11, a.k12 + b.k12, a.k22 + b.k22, a.t12 + b.t12
    ma, mb = _means(a, ctx), _means(b, ctx)
    if ma is not None and mb is not None:
        (a1, a2), (b1, b2) = ma, mb
        k12 = k12 + a1 * b2 + b1 * a2
        k11 = k11 + 2 * a1 * b1
        k22 = k22 + 2 * a2 * b2
    return a.new(k11=k11, k12=k12, k22=k22, t12=t12, pre=None, feature=None,
                 is_gaussian=a.is_gaussian and b.is_gaussian and a.pre is None and b.pre is None)


def _sum(layer, states, linear, ctx: Ctx) -> State:
    """Mirror of :func:`infntk.layers.branching.sum_kernels` on symbolic states."""
    linear_known = linear is not None
    if linear is None:
        linear = [False] * len(states)
    elementwise = [s for s, lin in zip(states, linear) if not lin]
    independent = [s for s, lin in zip(states, linear) if lin]
    if elementwise:
        groups: list = []
        for s in elementwise:
            src, feat = nonlinear.source_and_feature(s)
            key = None if src is None else src.uid
            for g in groups:
                if g[0] == key:
                    g[2].append(feat)
                    break
            else:
                groups.append((key, src, [feat], s))
        if len(groups) > 1 and linear_known:
            raise layer.error("cannot add these branches: branches without a linear layer must be "
                              "elementwise maps of the same pre-activation.")
        merged = []
        for key, src, feats, s in groups:
            if len(feats) == 1:
                merged.append(s)
            elif src is None:
                raise layer.error("cannot add these branches: one is neither Gaussian nor an "
                                  "elementwise function of one Gaussian pre-activation.")
            else:
                merged.append(_evaluate(nonlinear.combine_sum(layer, feats), src, s, ctx))
        independent = merged + independent
    out = independent[0]
    for s in independent[1:]:
        out = _add_independent(layer, out, s, ctx)
    return out


def _spatial_concat(layer, states, ctx: Ctx) -> State:
    """Concatenation along a spatial axis: block-diagonal covariance, an operator of the branches."""
    if not ctx.display:
        raise NotSymbolic(f"closed_form: {layer.label} acts on the spatial covariance; the closed "
                          "form in (xx, xy, yy) exists only for fully-connected models.")
    C = operator(f"concat_{{axis={layer.axis}}}", rf"\mathrm{{concat}}_{{{layer.axis}}}", linear=True)
    return states[0].new(**{n: C(*(getattr(st, n) for st in states)) for n in ("k11", "k12", "k22", "t12")},
                         spatial=True, is_gaussian=True, pre=None, feature=None)


def _concat(layer, states, ctx: Ctx) -> State:
    chans = []
    for i, s in enumerate(states):
        c = s.channels
        if c is None or isinstance(c, str):
            c = sp.Symbol(f"C_{_LETTERS[i]}" if c is None else str(c), positive=True, integer=True)
        chans.append(sp.Integer(c) if isinstance(c, int) else c)
    total = sum(chans)

    def mix(name):
        return sum((c / total * getattr(s, name) for c, s in zip(chans, states)), sp.S.Zero)

    tot = total if total.is_Integer else None
    return states[0].new(k11=mix("k11"), k12=mix("k12"), k22=mix("k22"), t12=mix("t12"),
                         channels=int(tot) if tot is not None else None, pre=None, feature=None,
                         is_gaussian=all(s.is_gaussian and s.pre is None for s in states))
