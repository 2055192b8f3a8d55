"""Markdown reports of convergence studies: tables of fitted slopes, with their bootstrap intervals,
against theory.

:func:`study_markdown` reports one study (``infntk converge --out``); :func:`slope_rows` and
:data:`HEAD` are the rows and header of the slope table that ``validation``'s multi-study report
shares.

Example:
    >>> fit = {"slope": -0.48, "lo": -0.55, "hi": -0.41}
    >>> consistent(fit, -0.5), consistent(fit, None)
    (True, None)
"""
from __future__ import annotations

__all__ = ["HEAD", "consistent", "slope_rows", "study_markdown"]

_NAMES = {"error": "single-draw error", "bias": "bias (debiased)", "fluct": "fluctuation"}

HEAD = ("| study | kernel | metric | widths (n) | seeds | slope | 95% CI (bootstrap) | theory | "
        "theory in CI |\n|---|---|---|---|---|---|---|---|---|")
"""Header of the slope table (one row per study, kernel and metric: :func:`slope_rows`)."""


def consistent(fit: dict, theory) -> bool | None:
    """Whether the theoretical value lies in the fitted interval (None if either is missing)."""
    if theory is None or fit is None or fit.get("lo") is None:
        return None
    return bool(fit["lo"] <= theory <= fit["hi"])


def _f(v, nd=3):
    return "–" if v is None else f"{v:+.{nd}f}" if isinstance(v, float) else str(v)


def _ci(fit):
    if fit.get("lo") is None:
        return "–"
    return f"[{fit['lo']:+.3f}, {fit['hi']:+.3f}]"


def _verdict(fit, theory):
    c = consistent(fit, theory)
    if theory is None:
        return "theory: exactly 0"
    if fit.get("slope") is None:
        return "not resolved (below noise)"
    width = fit["hi"] - fit["lo"]
    return ("yes" if c else "**no**") + f" (CI width {width:.2f})"


def slope_rows(label: str, d: dict) -> list[str]:
    """Rows of the slope table (:data:`HEAD`) for one study's result dict ``d``."""
    rows = []
    for k, fits in d["fits"].items():
        for m in ("fluct", "error", "bias"):
            f = fits[m]
            th = d["theory"][m]
            used = f.get("widths_used") or []
            ws = f"{used[0]}–{used[-1]} ({len(used)})" if used else "–"
            rows.append(f"| {label} | {k.upper()} | {_NAMES[m]} | {ws} | {d['seeds']} | "
                        f"{_f(f['slope'])} | {_ci(f)} | {_f(th, 1)} | {_verdict(f, th)} |")
    return rows


def study_markdown(d: dict) -> str:
    """Report of one :class:`~infntk.studies.convergence.StudyResult` dict."""
    lines = [f"# Convergence study: {d['model']}", "",
             f"Device: {d['device']['kind']} ({d['device']['platform']}), jax {d['device']['jax']}; "
             f"{d['seeds']} seeds per width; networks in {d['config']['dtype']}.", "", HEAD]
    lines += slope_rows(d["name"], d)
    lines += ["", "| width | NTK fluct | NTK bias | NNGP fluct | seconds | chunk |", "|---|---|---|---|---|---|"]
    for i, w in enumerate(d["widths"]):
        t = d["timings"][str(w)]
        lines.append(f"| {w} | {d['metrics']['ntk']['fluct'][i]:.4g} | {d['metrics']['ntk']['bias'][i]:.3g} "
                     f"| {d['metrics']['nngp']['fluct'][i]:.4g} | {t['seconds']:.1f} | {t['chunk']} |")
    return "\n".join(lines) + "\n"
