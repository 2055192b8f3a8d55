r"""Printing a recursion: plain text (unicode) and LaTeX, one line per layer.

Equations read like the papers -- hyperparameters first, then the state:
``K⁽¹⁾ = σ_w²·K⁽⁰⁾ + σ_b²``, ``Θ⁽¹⁾ = K⁽¹⁾ + σ_w²·Θ⁽⁰⁾``; an activation reads
``K⁽²⁾ = T_relu(K₁₁⁽¹⁾, K⁽¹⁾, K₂₂⁽¹⁾)``, ``Θ⁽²⁾ = T'_relu(K₁₁⁽¹⁾, K⁽¹⁾, K₂₂⁽¹⁾)·Θ⁽¹⁾``, followed by the
dual's sympy expression (or the route that computes it numerically). ``numeric=True`` substitutes
the hyperparameters' values into the equations instead of listing them.

Example:
    >>> import infntk as nk
    >>> rec = (nk.Conv(8, (3, 3), padding="SAME") >> nk.Flatten() >> nk.Dense(1)).recursion()
    >>> print(text(rec, numeric=True).splitlines()[1])
    Conv(8, (3, 3), padding='SAME'):  K⁽¹⁾ = A_{3×3,s=1,SAME}[K⁽⁰⁾],  Θ⁽¹⁾ = K⁽¹⁾ + A_{3×3,s=1,SAME}[Θ⁽⁰⁾]
    >>> print(latex(rec).splitlines()[2].split(" &&")[0])
    K^{(1)} &= \sigma_w^{2}\,\mathcal{A}_{3\times 3,\,s=1,\,\mathrm{SAME}}\left[K^{(0)}\right], \quad \Theta^{(1)} = K^{(1)} + \sigma_w^{2}\,\mathcal{A}_{3\times 3,\,s=1,\,\mathrm{SAME}}\left[\Theta^{(0)}\right]
"""
from __future__ import annotations


import sympy as sp
from sympy.printing.latex import LatexPrinter
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from .steps import Step, exact
from .symbols import LATEX_NAMES, label_latex, label_text, state_symbols

__all__ = ["text", "latex", "step_text", "step_latex"]

_NUMERIC = r"\text{(no symbolic form: computed by quadrature)}"
_SUPDIGITS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def _is_param(e) -> bool:
    """Hyperparameters and numbers go first in a product."""
    base = e.base if e.is_Pow else e
    return base.is_number or (base.is_Symbol and (str(base).startswith(("σ", "n", "d", "C_"))))


def _ordered_mul(expr):
    c, rest = expr.as_coeff_Mul()
    factors = sp.Mul.make_args(rest)
    def rank(f):
        if _is_param(f):
            return 0
        return 1 if (f.base if f.is_Pow else f).is_Function else 2
    return c, sorted(factors, key=rank)


def _ordered_add(expr):
    def key(t):
        syms = {str(s) for s in t.free_symbols}
        has_state = any(s.startswith(("K", "Θ")) for s in syms) or bool(t.atoms(sp.Function))
        has_theta = any(s.startswith("Θ") for s in syms)
        return (not has_state, has_theta, sp.default_sort_key(t))
    return sorted(sp.Add.make_args(expr), key=key)


class _Text(StrPrinter):
    def _print_Mul(self, expr):
        c, factors = _ordered_mul(expr)
        if any(f.is_Pow and f.exp.is_negative for f in factors) or not factors:
            return super()._print_Mul(expr)
        body = "·".join(self.parenthesize(f, PRECEDENCE["Mul"]) for f in factors)
        if c == 1:
            return body
        if c == -1:
            return "-" + body
        return self.parenthesize(c, PRECEDENCE["Mul"]) + "·" + body

    def _print_Add(self, expr, order=None):
        terms = _ordered_add(expr)
        out = self._print(terms[0])
        for t in terms[1:]:
            s = self._print(t)
            out += " - " + s[1:] if s.startswith("-") else " + " + s
        return out

    def _print_Pow(self, expr, rational=False):
        if expr.exp.is_Integer and 2 <= expr.exp <= 9 and (expr.base.is_Symbol or expr.base.is_Function):
            return self._print(expr.base) + str(expr.exp).translate(_SUPDIGITS)
        return super()._print_Pow(expr, rational)


class _Latex(LatexPrinter):
    def __init__(self, **settings):
        settings.setdefault("symbol_names", LATEX_NAMES)
        super().__init__(settings)

    def _print_Mul(self, expr):
        c, factors = _ordered_mul(expr)
        if any(f.is_Pow and f.exp.is_negative for f in factors) or not factors:
            return super()._print_Mul(expr)
        body = r"\,".join(self.parenthesize(f, PRECEDENCE["Mul"]) for f in factors)
        if c == 1:
            return body
        if c == -1:
            return "-" + body
        return self._print(c) + r"\," + body

    def _print_Add(self, expr, order=None):
        terms = _ordered_add(expr)
        out = self._print(terms[0])
        for t in terms[1:]:
            s = self._print(t)
            out += " - " + s[1:] if s.startswith("-") else " + " + s
        return out


def expr_text(e) -> str:
    return _Text().doprint(sp.sympify(e))


def expr_latex(e) -> str:
    return _Latex().doprint(sp.sympify(e))


def _value_text(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(v)
    return str(v)


def _subs_params(step: Step, e):
    return sp.sympify(e).xreplace({s: exact(v) for s, v in step.params if not isinstance(v, str)})


def _eqs(step: Step, numeric: bool, pr, k_name, th_name):
    nngp, ntk = step.nngp, step.ntk
    if numeric:
        nngp, ntk = _subs_params(step, nngp), _subs_params(step, ntk)
    if isinstance(nngp, sp.Tuple):
        return (f"{k_name} = (" + ", ".join(pr(a) for a in nngp.args) + ")",
                f"{th_name} = (" + ", ".join(pr(a) for a in ntk.args) + ")")
    return f"{k_name} = {pr(nngp)}", f"{th_name} = {pr(ntk)}"


def _list_names(step: Step, latex: bool):
    if isinstance(step.nngp, sp.Tuple):
        lab = step.label_out
        n = len(step.nngp.args)
        if latex:
            ks = ", ".join("K" + label_latex((*lab, chr(97 + i))) for i in range(n))
            ts = ", ".join(r"\Theta" + label_latex((*lab, chr(97 + i))) for i in range(n))
            return f"({ks})", f"({ts})"
        ks = ", ".join("K" + label_text((*lab, chr(97 + i))) for i in range(n))
        ts = ", ".join("Θ" + label_text((*lab, chr(97 + i))) for i in range(n))
        return f"({ks})", f"({ts})"
    return None


def step_text(step: Step, numeric: bool = False, indent: str = "") -> list:
    """The text lines of one step (one line, plus the lines of its branches)."""
    names = _list_names(step, False) or ("K" + label_text(step.label_out),
                                         "Θ" + label_text(step.label_out))
    lines = []
    for letter, steps in step.branches:
        lines.append(f"{indent}  branch {letter}:")
        for s in steps:
            lines.extend(step_text(s, numeric, indent + "    "))
    k, t = _eqs(step, numeric, expr_text, *names)
    line = f"{indent}{step.name}:  {k},  {t}"
    extras = []
    if step.params and not numeric:
        extras.append(", ".join(f"{s} = {_value_text(v)}" for s, v in step.params))
    for lhs, _, e in step.defs:
        extras.append(f"{lhs} = {sp.sstr(e) if e is not None else '(no symbolic form: computed by quadrature)'}")
    if step.note:
        extras.append(f"[{step.note}]")
    if extras:
        line += "    where " + "; ".join(extras)
    return lines + [line]


def text(rec, numeric: bool = False) -> str:
    """The recursion as plain text, one line per layer."""
    k11, k, k22, th = state_symbols((0,))
    lines = [f"{k} = x·x'/d,  {k11} = ‖x‖²/d,  {k22} = ‖x'‖²/d,  {th} = 0"]
    for step in rec.steps:
        lines.extend(step_text(step, numeric))
    return "\n".join(lines)


def step_latex(step: Step, numeric: bool = False) -> list:
    """The LaTeX rows (``aligned`` environment) of one step and its branches."""
    names = _list_names(step, True) or ("K" + label_latex(step.label_out),
                                        r"\Theta" + label_latex(step.label_out))
    rows = []
    for letter, steps in step.branches:
        rows.append(rf"&\quad\text{{branch {letter}:}}")
        for s in steps:
            rows.extend(step_latex(s, numeric))
    k, t = _eqs(step, numeric, expr_latex, *names)
    k, t = k.replace(" = ", " &= ", 1), t
    name = step.name.replace("_", r"\_").replace("{", r"\{").replace("}", r"\}")
    row = rf"{k}, \quad {t} && \text{{{name}}}"
    extras = []
    if step.params and not numeric:
        extras.append(", ".join(f"{LATEX_NAMES.get(s, str(s))} = {_value_text(v)}"
                                for s, v in step.params))
    for _, lhs, e in step.defs:
        extras.append(f"{lhs} = " + (expr_latex(e) if e is not None else _NUMERIC))
    if step.note:
        extras.append(r"\text{[" + step.note.replace("_", r"\_") + "]}")
    if extras:
        row += r" \\ &\qquad " + r",\quad ".join(extras)
    return rows + [row]


def latex(rec, numeric: bool = False) -> str:
    """The recursion as a LaTeX ``aligned`` block, one row per layer."""
    rows = [r"K^{(0)} &= \frac{x\cdot x'}{d}, \quad K_{11}^{(0)} = \frac{\|x\|^2}{d}, \quad "
            r"K_{22}^{(0)} = \frac{\|x'\|^2}{d}, \quad \Theta^{(0)} = 0"]
    for step in rec.steps:
        rows.extend(step_latex(step, numeric))
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"
