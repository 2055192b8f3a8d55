r"""The symbols and named operators that recursions are written in.

* input statistics :data:`XX`, :data:`XY`, :data:`YY` -- :math:`\|x\|^2/d`, :math:`x\cdot x'/d`,
  :math:`\|x'\|^2/d`, the input kernel of :meth:`infntk.kernel.Kernel.from_inputs`;
* per-depth state symbols :math:`K^{(l)}` (the covariance between the two inputs),
  :math:`K_{11}^{(l)}, K_{22}^{(l)}` (the two variances) and :math:`\Theta^{(l)}` (the NTK), from
  :func:`state_symbols`;
* layer hyperparameters :math:`\sigma_w, \sigma_b, n` (:func:`param_symbol`);
* named operators (:func:`operator`): sympy functions that print as e.g. ``T_relu(...)`` in text and
  :math:`\mathcal{A}_{3\times3,\,s=1,\,\mathrm{SAME}}\left[K\right]` in LaTeX.

Every symbol created here registers its LaTeX spelling in :data:`LATEX_NAMES` (used by
:mod:`infntk.recursion.render`).

Example:
    >>> from infntk.recursion.symbols import state_symbols, XY
    >>> k11, k, k22, theta = state_symbols((2,))
    >>> str(k), str(theta), XY.is_real
    ('K⁽²⁾', 'Θ⁽²⁾', True)
"""
from __future__ import annotations

import functools
import re

import sympy as sp

__all__ = ["XX", "XY", "YY", "LATEX_NAMES", "state_symbols", "param_symbol", "operator",
           "label_text", "label_latex", "superscript"]

#: LaTeX spelling of every symbol made here.
LATEX_NAMES: dict = {}
#: ``symbol -> (label, kind)`` for the state symbols (``kind``: ``'K'``, ``'K11'``, ``'K22'``, ``'Θ'``).
STATE_OF: dict = {}

XX = sp.Symbol("xx", positive=True)
XY = sp.Symbol("xy", real=True)
YY = sp.Symbol("yy", positive=True)
LATEX_NAMES.update({XX: r"\frac{\|x\|^2}{d}", XY: r"\frac{x \cdot x'}{d}",
                    YY: r"\frac{\|x'\|^2}{d}"})

_SUP = dict(zip("0123456789+-=()abcdefghijklmnoprstuvwxyz.",
                "⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁼⁽⁾ᵃᵇᶜᵈᵉᶠᵍʰⁱʲᵏˡᵐⁿᵒᵖʳˢᵗᵘᵛʷˣʸᶻ·"))
_SUB = dict(zip("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


def superscript(s: str) -> str:
    """``s`` in unicode superscript characters (characters without one are kept)."""
    return "".join(_SUP.get(c, c) for c in s)


def label_text(label: tuple) -> str:
    """The depth label ``(3, 'a', 1)`` as the superscript ``⁽³·ᵃ·¹⁾``."""
    return "⁽" + superscript(".".join(str(p) for p in label)) + "⁾"


def label_latex(label: tuple) -> str:
    return "^{(" + ".".join(str(p) for p in label) + ")}"


@functools.lru_cache(maxsize=None)
def state_symbols(label: tuple):
    r"""``(K_11, K, K_22, Theta)`` at depth ``label``: :math:`K_{11}^{(l)}, K^{(l)}, K_{22}^{(l)},
    \Theta^{(l)}` (``K`` is the covariance between the two inputs)."""
    t, l = label_text(label), label_latex(label)
    k11 = sp.Symbol("K" + "₁₁" + t, positive=True)
    k = sp.Symbol("K" + t, real=True)
    k22 = sp.Symbol("K" + "₂₂" + t, positive=True)
    th = sp.Symbol("Θ" + t, real=True)
    LATEX_NAMES.update({k11: "K_{11}" + l, k: "K" + l, k22: "K_{22}" + l, th: r"\Theta" + l})
    STATE_OF.update({k11: (label, "K11"), k: (label, "K"), k22: (label, "K22"), th: (label, "Θ")})
    return k11, k, k22, th


_PARAM_LATEX = {"σ_w": r"\sigma_w", "σ_b": r"\sigma_b", "n": "n", "d": "d", "ε": r"\epsilon"}


@functools.lru_cache(maxsize=None)
def param_symbol(name: str, label: tuple = ()):
    r"""A hyperparameter symbol: ``param_symbol('σ_w')`` is :math:`\sigma_w`;
    ``param_symbol('σ_w', (2,))`` is :math:`\sigma_w^{(2)}` (a layer's own, for closed forms with
    symbolic hyperparameters)."""
    text = name + (label_text(label) if label else "")
    latex = _PARAM_LATEX.get(name, name) + (label_latex(label) if label else "")
    if name in ("n", "d") or name.startswith("S_"):
        s = sp.Symbol(text, positive=True, integer=True)
    else:
        s = sp.Symbol(text, nonnegative=True) if name in ("σ_b", "ε") else sp.Symbol(text, positive=True)
    LATEX_NAMES[s] = latex
    return s


def _ident(s: str) -> str:
    return "Op_" + re.sub(r"\W", "_", s.encode("ascii", "replace").decode())


@functools.lru_cache(maxsize=None)
def operator(text: str, latex: str, linear: bool = False, role: str = "", payload=None):
    """A sympy function printed as ``text(args)`` / ``latex(args)``; a *linear* operator (conv,
    pooling, means) prints its argument in square brackets. ``role`` and ``payload`` say what it
    stands for, so that a recursion can be evaluated and closed: ``'linear'`` with a covariance
    operator of :mod:`infntk.layers.spatial`, ``'T'``, ``'dT'`` or ``'m'`` with an activation's
    dual (its dual, derivative dual, channel mean)."""
    open_t, close_t = ("[", "]") if linear else ("(", ")")
    open_l, close_l = (r"\left[", r"\right]") if linear else (r"\left(", r"\right)")

    def _sympystr(self, printer):
        return text + open_t + ", ".join(printer._print(a) for a in self.args) + close_t

    def _latex(self, printer, exp=None):
        body = latex + open_l + ", ".join(printer._print(a) for a in self.args) + close_l
        return body if exp is None else f"{{{body}}}^{{{exp}}}"

    return type(_ident(text), (sp.Function,), {
        "_sympystr": _sympystr, "_latex": _latex, "op_text": text, "op_latex": latex,
        "is_linear_operator": linear, "role": role, "payload": payload, "__module__": __name__})
