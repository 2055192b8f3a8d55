r"""The kernel-map operations on sympy: running a model's own ``kernel_map`` code writes its recursion.

:class:`SymbolicOps` implements the operations of :mod:`infntk.ops` on a
:class:`~infntk.kernel.Kernel` whose fields are sympy expressions: hyperparameters become symbols
(:math:`\sigma_w, \sigma_b, n, \epsilon`, values recorded), a linear covariance operator becomes a
named operator (:math:`\mathcal A_{3\times3,\,s=1,\,\mathrm{SAME}}[K]`, :math:`\mathrm{pool}[K]`, ...),
an activation's dual and derivative dual become :math:`T_\phi(K_{11}, K, K_{22})` and
:math:`T'_\phi(\ldots)\,\Theta`. The driver (:func:`infntk.driver.fold`) calls :meth:`after` once per
layer; it records a :class:`~infntk.recursion.steps.Step` with the layer's pair equations and
re-expresses the state in fresh symbols :math:`K^{(l)}, \Theta^{(l)}` of the next depth, so every
printed line reads in terms of the previous one. Branches (``ops.run``) get their own labels
(``(3, 'a', 1)``, ...) and their steps are attached to the branching step.

Every operator symbol carries what it stands for (``role`` and ``payload``), so that the recorded
steps can be evaluated on arrays (:mod:`infntk.recursion.evaluate`) and substituted into closed
forms (:mod:`infntk.recursion.closed_form`).

Example:
    >>> import infntk as nk
    >>> print((nk.Dense(8) >> nk.Relu()).recursion().text().splitlines()[2])  # doctest: +ELLIPSIS
    Relu():  K⁽²⁾ = T_relu(K₁₁⁽¹⁾, K⁽¹⁾, K₂₂⁽¹⁾),  Θ⁽²⁾ = T'_relu(K₁₁⁽¹⁾, K⁽¹⁾, K₂₂⁽¹⁾)·Θ⁽¹⁾    where ...
"""
from __future__ import annotations

import sympy as sp

from ..kernel import Kernel
from .steps import Step, feature_defs, feature_name, feature_note, latex_name, mean_def, subscript
from .symbols import operator, param_symbol, state_symbols

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


class _Frame:
    """The steps of one fold (the model, or one branch) and the current step's records."""

    def __init__(self, prefix: tuple):
        self.prefix = prefix
        self.steps: list = []
        self.reset()

    def reset(self):
        self.params: list = []
        self.defs: list = []
        self.notes: list = []
        self.branches: list = []


def linear_operator(op):
    """The named sympy operator of a covariance operator of :mod:`infntk.layers.spatial`."""
    return operator(op.text, op.latex, linear=True, role="linear", payload=op)


def dual_operators(feat):
    """``(T, T', m)``: the named sympy operators of an activation's dual, derivative dual, mean."""
    n = subscript(feature_name(feat))
    ln = latex_name(feature_name(feat))
    return (operator(f"T_{n}", f"T_{{{ln}}}", role="T", payload=feat),
            operator(f"T'_{n}", f"T'_{{{ln}}}", role="dT", payload=feat),
            operator(f"m_{n}", f"m_{{{ln}}}", role="m", payload=feat))


class SymbolicOps:
    """The operations of :mod:`infntk.ops` on sympy (see the module docstring)."""

    symbolic = True

    def __init__(self):
        self._frames = [_Frame(())]
        self._labels: dict = {}
        self._roots: dict = {}
        self._keep: list = []

    # -- bookkeeping -----------------------------------------------------------------------------
    @property
    def _frame(self) -> _Frame:
        return self._frames[-1]

    @property
    def steps(self) -> tuple:
        return tuple(self._frames[0].steps)

    def label_of(self, k) -> tuple:
        return self._labels[id(k)]

    def register(self, k, label: tuple, like=None):
        """Remember ``k``'s depth label and which state it is a relabelling of (``like``)."""
        self._keep.append(k)
        self._labels[id(k)] = label
        self._roots[id(k)] = k if like is None else self._root(like)
        return k

    def _root(self, k):
        return self._roots.get(id(k), k)

    # -- hyperparameters -------------------------------------------------------------------------
    def param(self, name: str, value):
        s = param_symbol(name)
        self._frame.params.append((s, value))
        return s

    def fan_in(self, value):
        return self.param("n", value)

    # -- linear maps -----------------------------------------------------------------------------
    def linear(self, op, k: Kernel) -> Kernel:
        f = linear_operator(op)
        on = lambda a: None if a is None else f(a)  # noqa: E731
        return k.replace(nngp=on(k.nngp), ntk=on(k.ntk), cov1=on(k.cov1), cov2=on(k.cov2))

    def pair_variances(self, k: Kernel, role: str):
        return k.cov1, k.cov2

    def position_mean(self, op, a, k: Kernel, role: str):
        return linear_operator(op)(a)

    def block_concat(self, op, parts, k: Kernel, role: str):
        return linear_operator(op)(*parts)

    def sqrt(self, a):
        return sp.sqrt(a)

    def fraction(self, a, b):
        return sp.sympify(a) / sp.sympify(b)

    # -- elementwise features --------------------------------------------------------------------
    def activate(self, feature, base: Kernel) -> Kernel:
        T, dT = self._duals(feature)
        q11, q12, q22 = base.cov1, base.nngp, base.cov2
        ntk = None if base.ntk is None else dT(q11, q12, q22) * base.ntk
        return base.replace(nngp=T(q11, q12, q22), ntk=ntk, cov1=T(q11, q11, q11),
                            cov2=T(q22, q22, q22), is_gaussian=False, is_input=False, pre=base,
                            feature=feature)

    def _duals(self, feature):
        """``(T, T')`` as functions of sympy arguments; records the printed definitions."""
        frame = self._frame
        inner = getattr(feature, "inner", None)
        if inner is not None:  # LayerNorm of an elementwise feature: its formula, printed expanded
            Ti, dTi, mi = dual_operators(inner)
            eps = self.param("ε", feature.eps)
            frame.defs.extend(feature_defs(inner) + (mean_def(inner),))
            frame.notes.append("LayerNorm of a non-Gaussian feature; " + feature_note(inner))

            def both(a, b, c):
                return feature.dual(Ti, dTi, mi, sp.sqrt, a, b, c, eps=eps)
            return (lambda a, b, c: both(a, b, c)[0]), (lambda a, b, c: both(a, b, c)[1])
        frame.defs.extend(feature_defs(feature))
        frame.notes.append(feature_note(feature))
        T, dT, _ = dual_operators(feature)
        return T, dT

    def mean(self, feature, q):
        if getattr(feature, "inner", None) is not None:
            return sp.S.Zero
        return dual_operators(feature)[2](q)

    def same_source(self, a: Kernel, b: Kernel) -> bool:
        return self._root(a) is self._root(b)

    # -- structure -------------------------------------------------------------------------------
    def diagonalized(self, k: Kernel) -> Kernel:
        if k.diagonal_spatial or k.spatial_ndim == 0:
            return k
        pre = None if k.pre is None else self.diagonalized(k.pre)
        return self.register(k.replace(diagonal_spatial=True, pre=pre), self.label_of(k), like=k)

    def run(self, branch, k: Kernel, index: int) -> Kernel:
        from ..driver import fold
        letter = _LETTERS[index]
        label = self.label_of(k)
        prefix = label if label and isinstance(label[-1], str) else (*label, letter)
        frame = _Frame(prefix)
        self._frames.append(frame)
        try:
            out = fold(branch, k, self)
        finally:
            self._frames.pop()
        self._frame.branches.append((letter, tuple(frame.steps)))
        return out

    def after(self, step, k_in: Kernel, k_out: Kernel) -> Kernel:
        frame = self._frame
        label_in = self.label_of(k_in)
        label_out = (*frame.prefix, step.index + 1)
        k11, k, k22, th = state_symbols(label_out)
        nngp, ntk = k_out.nngp, k_out.ntk
        if not sp.sympify(nngp).is_Atom:
            ntk = sp.sympify(ntk).subs(nngp, k)      # Θ' = K' + σ_w² Θ: K' by its name
        frame.steps.append(Step(
            layer=step.layer, kind=step.layer.recursion_kind, label_in=label_in,
            label_out=label_out, nngp=nngp, ntk=ntk, params=tuple(frame.params),
            defs=tuple(dict.fromkeys(frame.defs)), note="; ".join(dict.fromkeys(frame.notes)),
            branches=tuple(frame.branches), full_in=step.full_in, shape_in=step.shape_in,
            shape_out=step.shape_out))
        frame.reset()
        fresh = k_out.replace(nngp=k, ntk=th, cov1=k11, cov2=k22)
        return self.register(fresh, label_out, like=k_out)
