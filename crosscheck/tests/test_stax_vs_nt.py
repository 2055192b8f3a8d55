"""infntk.stax against neural_tangents.stax 0.6.5: NNGP and NTK, float64, entry by entry.

Each architecture in archs.py is built twice from the same code, ``build(neural_tangents.stax)`` and
``build(infntk.stax)``, and both kernels are compared for three input layouts:

  x2=None   kernel_fn(x1)            with 5 inputs
  x2        kernel_fn(x1, x2)        with 3 and 2 of those 5 (different sizes catch transpositions)
  batch1    kernel_fn(x1)            with a single input

Bar: |infntk - nt| <= RTOL * max(|nt|, s_ij) per entry, with s_ij = sqrt(K_ii K_jj) the
Cauchy-Schwarz scale of the entry (see _compare.py for why this is the honest scale). The diagonals
K_ii, K_jj come from neural-tangents' kernel of x1 and x2 stacked together.

Disagreements where neural-tangents is the one that is wrong are listed in NT_WRONG: the direct
comparison is then a strict xfail, and test_montecarlo_vs_nt.py shows with finite networks built by
neural-tangents' own init/apply which of the two the finite networks converge to.

Every comparison records its worst relative error; a run that covers every architecture writes
crosscheck/reports/stax_errors.md, the worst error per family (conftest.py, _stax_report.py).
"""
from __future__ import annotations

import functools
import importlib.util
import inspect
import zlib

import jax
import numpy as np
import pytest
from neural_tangents import stax as nt_stax

from _compare import batch_diagonal, describe, entry_scale, relative_errors
from _stax_report import STAX_ERROR_PROPERTY
from archs import ACTIVATIONS, ARCHS, Arch

ARCH_SHAPES = {a.name: a.shape for a in ARCHS}

RTOL = 1e-6

HAVE_INFNTK_STAX = importlib.util.find_spec("infntk.stax") is not None
needs_infntk = pytest.mark.skipif(not HAVE_INFNTK_STAX, reason="infntk.stax does not exist yet")

# One draw of 5 inputs per architecture, X; the modes take slices of it, so that neural-tangents'
# kernel of the whole X (mode x2=None) gives the diagonals K_ii, K_jj that scale the x2 mode.
N_INPUTS = 5
MODES = {"x2=None": (slice(0, 5), None), "x2": (slice(0, 3), slice(3, 5)),
         "batch1": (slice(0, 1), None)}

# Architectures where neural-tangents 0.6.5 disagrees with the finite networks it builds itself
# (arbitrated in test_montecarlo_vs_nt.py). name -> reason.
_RECTIFIED_MONOMIAL_NAN = (
    "neural-tangents 0.6.5 RectifiedMonomial returns NaN for every diagonal entry K(x, x) (and "
    "everything downstream of it): its dual evaluates (pi - theta) / sin(theta) at theta = "
    "arccos(1) = 0. Cross entries of a single layer are checked in "
    "test_rectified_monomial_cross_entries, the diagonal against finite networks in "
    "test_montecarlo_vs_nt.py")
NT_WRONG: dict[str, str] = {
    **{f"{family}_rectified_monomial{d}": _RECTIFIED_MONOMIAL_NAN
       for family in ("dense", "conv") for d in range(4)},
    **{f"{family}_gelu_approximate": (
        "neural-tangents' Gelu kernel ignores approximate=True (exact-Gelu kernel, tanh-Gelu "
        "apply_fn): off by ~2e-4; finite networks side with infntk "
        "(test_gelu_approximate_finite_networks_converge_to_infntk)") for family in ("dense", "conv")},
    "sign_then_pool": (
        "neural-tangents' Sign sets cov1 = 1 at every pair of spatial positions, pooling then reads "
        "the wrong off-diagonals: off by 6-40 %; finite networks side with infntk "
        "(test_sign_then_pool_finite_networks_converge_to_infntk)"),
}

# Disagreements where infntk is the one to fix (reported to the core; strict: when the fix lands
# the XPASS fails the suite, and the entry must go). (name, mode or None for all modes) -> reason.
# With x2=None, K(x, x) through sqrt-singular duals (Sign: arcsin at rho = 1): infntk keeps the
# diagonal and the per-input variances identical, so K(x, x) is exact (1.1^2 + 0.05^2 = 1.2125 to
# 2e-16, tests/layers/test_diagonal_precision.py); neural-tangents computes them in two code paths
# and the ulp mismatch becomes ~1e-4 after two Sign layers. The exact value decides.
NT_WRONG_IN_MODE: dict[tuple, str] = {
    (name, "x2=None"): ("neural-tangents' K(x, x) after Sign layers is off by ~1e-4 (sqrt(eps) "
                        "amplified twice at rho = 1); the exact diagonal is W^2 + b^2, which infntk "
                        "reproduces to 2e-16 (tests/layers/test_diagonal_precision.py)")
    for name in ("dense_sign", "conv_sign")}

INFNTK_TO_FIX: dict[tuple, str] = {}


def _ix_stax():
    import infntk.stax
    return infntk.stax


@functools.lru_cache(maxsize=None)
def _draw(name: str) -> np.ndarray:
    a = next(a for a in ARCHS if a.name == name)
    return np.random.default_rng(zlib.crc32(name.encode())).normal(size=(N_INPUTS,) + a.shape)


def inputs(a: Arch, mode: str):
    s1, s2 = MODES[mode]
    x = _draw(a.name)
    return x[s1], (None if s2 is None else x[s2])


def kernels(kernel_fn, x1, x2):
    k = kernel_fn(x1, x2, ("nngp", "ntk"))
    return {"nngp": np.asarray(k.nngp), "ntk": np.asarray(k.ntk)}


@functools.lru_cache(maxsize=None)
def nt_model(name: str):
    a = next(a for a in ARCHS if a.name == name)
    init_fn, apply_fn, kernel_fn = a.build(nt_stax)
    if len(a.shape) > 1:
        # Spatial kernels: neural-tangents op by op is ~5x slower than compiled (and agrees with it
        # to 1e-15 relative); deep dense stacks compile slower than they run, so stay eager.
        kernel_fn = jax.jit(kernel_fn, static_argnames="get")
    return init_fn, apply_fn, kernel_fn


@functools.lru_cache(maxsize=None)
def nt_kernels(name: str, mode: str) -> dict:
    a = next(a for a in ARCHS if a.name == name)
    return kernels(nt_model(name)[2], *inputs(a, mode))


def known_disagreement(a: Arch, mode: str) -> str | None:
    """Why the comparison of ``a`` in ``mode`` is a strict xfail (``None``: it must agree)."""
    return (NT_WRONG.get(a.name) or INFNTK_TO_FIX.get((a.name, None))
            or INFNTK_TO_FIX.get((a.name, mode)) or NT_WRONG_IN_MODE.get((a.name, mode)))


def _params():
    for a in ARCHS:
        marks = []
        if a.name in NT_WRONG:
            marks.append(pytest.mark.xfail(strict=True, reason=NT_WRONG[a.name]))
        for mode in MODES:
            if a.family == "deep" and mode == "batch1":
                continue  # batch 1 is covered by every other family; deep stacks compile slowly
            why = (INFNTK_TO_FIX.get((a.name, None)) or INFNTK_TO_FIX.get((a.name, mode))
                   or NT_WRONG_IN_MODE.get((a.name, mode)))
            extra = [pytest.mark.xfail(strict=True, reason=why)] if why else []
            yield pytest.param(a, mode, id=f"{a.name}[{mode}]", marks=marks + extra)


def compare(a: Arch, mode: str, ix_stax) -> dict:
    """{'nngp'|'ntk': (max relative error, description)} of infntk against neural-tangents."""
    x1, x2 = inputs(a, mode)
    ref = nt_kernels(a.name, mode)
    got = kernels(a.build(ix_stax)[2], x1, x2)
    full = ref if x2 is None else nt_kernels(a.name, "x2=None")
    out = {}
    for key in ("nngp", "ntk"):
        b, g = ref[key], got[key]
        if g.shape != b.shape:
            out[key] = (np.inf, f"{key}: shape {g.shape} (infntk) != {b.shape} (neural-tangents)")
            continue
        d = batch_diagonal(full[key])
        d1, d2 = (d, d) if x2 is None else (d[:len(x1)], d[len(x1):])
        s = entry_scale(b, d1, d2)
        out[key] = (float(np.max(relative_errors(g, b, s))), describe(key, g, b, s, RTOL))
    return out


@needs_infntk
@pytest.mark.parametrize("a, mode", list(_params()))
def test_kernel_matches_nt(a: Arch, mode: str, record_property):
    res = compare(a, mode, _ix_stax())
    # collected by conftest.py into reports/stax_errors.md (worst error per family)
    record_property(STAX_ERROR_PROPERTY, {
        "arch": a.name, "family": a.family, "mode": mode, "nngp": res["nngp"][0],
        "ntk": res["ntk"][0], "known": known_disagreement(a, mode) is not None, "rtol": RTOL})
    bad = [msg for err, msg in res.values() if not err <= RTOL]
    assert not bad, f"{a.name} [{mode}] ({a.family}):\n  " + "\n  ".join(bad)


def test_reference_is_finite():
    """neural-tangents itself gives finite, symmetric kernels on every architecture (x2=None)."""
    for a in ARCHS:
        if a.name in NT_WRONG:
            continue
        for key, m in nt_kernels(a.name, "x2=None").items():
            assert np.all(np.isfinite(m)), (a.name, key)
            if m.ndim == 2:
                np.testing.assert_allclose(m, m.T, rtol=1e-12, atol=1e-12 * np.max(np.abs(m)),
                                           err_msg=f"{a.name} {key}")


# ------------------------------------------------------------------------------------------------
# Coverage: the list above really exercises every layer, padding, activation parameter, ...
# ------------------------------------------------------------------------------------------------
class _Recorder:
    """A stand-in for a stax module: records every call (name, kwargs, args) and delegates."""

    def __init__(self, stax):
        self.stax, self.calls = stax, []

    def __getattr__(self, name):
        fn = getattr(self.stax, name)

        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return fn(*args, **kwargs)
        return call


def _all_calls():
    calls = {}
    for a in ARCHS:
        rec = _Recorder(nt_stax)
        a.build(rec)
        calls[a.name] = rec.calls
    return calls


def _stax_names() -> tuple[set, set]:
    """(layers, activations): the names of infntk.stax that neural-tangents' stax has too, read from
    infntk's layer registry (the stax facade is derived from it), so a new layer that both libraries
    have must be exercised by archs.py."""
    from infntk.layers import registry

    shared = [n for n in registry.names("stax") if hasattr(nt_stax, n)]
    activations = {n for n in shared if registry.is_activation(n)}
    return set(shared) - activations, activations


@needs_infntk
def test_stax_names_and_signatures():
    """Every infntk.stax function that neural-tangents has takes neural-tangents' arguments: same
    names, order, kinds and defaults (so calls port unchanged, positionally or by keyword)."""
    layers, activations = _stax_names()
    assert {"Dense", "Conv", "serial", "Relu"} <= layers | activations
    ix = _ix_stax()

    def args(fn):
        return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]

    bad = {n: (args(getattr(ix, n)), args(getattr(nt_stax, n))) for n in sorted(layers | activations)
           if args(getattr(ix, n)) != args(getattr(nt_stax, n))}
    assert not bad, bad


def test_coverage():
    layers, activations = _stax_names()
    calls = _all_calls()
    flat = [c for cs in calls.values() for c in cs]
    names = {c[0] for c in flat}
    assert layers | activations <= names, sorted((layers | activations) - names)
    assert len(ARCHS) >= 40 and len({a.name for a in ARCHS}) == len(ARCHS)

    # Every activation parameter is set to a non-default value somewhere.
    for act in activations:
        sig = inspect.signature(getattr(nt_stax, act))
        for p in sig.parameters.values():
            set_values = [sig.bind(*c[1], **c[2]).arguments.get(p.name, p.default)
                          for c in flat if c[0] == act]
            if p.default is inspect.Parameter.empty:
                continue
            assert any(v != p.default for v in set_values), f"{act}({p.name}=...) only default"

    # Conv: every padding in 1-D, 2-D and 3-D; strides other than 1 somewhere in each dimension.
    convs = [inspect.signature(nt_stax.Conv).bind(*c[1], **c[2]).arguments
             for c in flat if c[0] == "Conv"]
    for dim in (1, 2, 3):
        pads = {c.get("padding", "VALID") for c in convs if len(c["filter_shape"]) == dim}
        assert pads == {"VALID", "SAME", "CIRCULAR"}, (dim, pads)
        assert any(c.get("strides") and max(c["strides"]) > 1
                   for c in convs if len(c["filter_shape"]) == dim), dim
    pools = [inspect.signature(nt_stax.AvgPool).bind(*c[1], **c[2]).arguments
             for c in flat if c[0] == "AvgPool"]
    assert {p.get("padding", "VALID") for p in pools} == {"VALID", "SAME", "CIRCULAR"}
    assert {p.get("normalize_edges", False) for p in pools} == {True, False}
    assert any(p.get("strides") and max(p["strides"]) > 1 for p in pools)
    assert {len(p["window_shape"]) for p in pools} == {1, 2, 3}

    # Both parameterizations, `s`, and LayerNorm over several axes with non-default eps.
    params = {c[2].get("parameterization", "ntk") for c in flat if c[0] in ("Dense", "Conv")}
    assert params == {"ntk", "standard"}
    assert any("s" in c[2] for c in flat if c[0] == "Dense")
    assert any("s" in c[2] for c in flat if c[0] == "Conv")
    # FanInConcat along a spatial axis, in 1-D and 2-D.
    spatial_concat = {len(ARCH_SHAPES[name]) - 1 for name, cs in calls.items() for c in cs
                      if c[0] == "FanInConcat"
                      and c[2].get("axis", -1) % (len(ARCH_SHAPES[name]) + 1)
                      not in (0, len(ARCH_SHAPES[name]))}
    assert {1, 2} <= spatial_concat, spatial_concat  # number of spatial axes
    assert any("axis" in c[2] for c in flat if c[0] == "LayerNorm")
    assert any("eps" in c[2] for c in flat if c[0] == "LayerNorm")

    # Deep stacks: >= 20 layers with weights.
    assert max(sum(c[0] in ("Dense", "Conv") for c in cs) for cs in calls.values()) >= 20
    assert sum(sum(c[0] in ("Dense", "Conv") for c in cs) >= 20 for cs in calls.values()) >= 4
    # Input layouts.
    assert {"x2=None", "x2", "batch1"} <= set(MODES) and MODES["batch1"][0] == slice(0, 1)
    assert set(ACTIVATIONS) and all(f"dense_{n}" in calls and f"conv_{n}" in calls
                                    for n in ACTIVATIONS)


# ------------------------------------------------------------------------------------------------
# RectifiedMonomial: neural-tangents is NaN on K(x, x) (see NT_WRONG), but its cross entries
# K(x1, x2) of a single layer are finite and are compared here. The scale s_ij needs the diagonal,
# which is the closed-form half-Gaussian moment E[u^2d 1{u>0}] = (2d-1)!! q^d / 2 (an independent
# route: neither library's code).
# ------------------------------------------------------------------------------------------------
def _double_factorial(n: int) -> int:
    return int(np.prod(np.arange(n, 0, -2))) if n > 0 else 1


@needs_infntk
@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_rectified_monomial_cross_entries(degree):
    w_std, b_std = 1.3, 0.2

    def build(s):
        return s.serial(s.Dense(8, W_std=w_std, b_std=b_std), s.RectifiedMonomial(degree=degree))

    x = np.random.default_rng(degree).normal(size=(5, 6))
    x1, x2 = x[:3], x[3:]
    ref = kernels(build(nt_stax)[2], x1, x2)
    got = kernels(build(_ix_stax())[2], x1, x2)
    q = w_std**2 * np.sum(x**2, axis=1) / x.shape[1] + b_std**2  # input variance of the activation
    diag = {"nngp": _double_factorial(2 * degree - 1) * q**degree / 2,
            # Dense gives ntk = q; the activation multiplies it by E[phi'(u)^2] (0 for degree 0,
            # whose derivative is a delta that neither library nor autodiff counts).
            "ntk": (0.0 * q if degree == 0 else
                    q * degree**2 * _double_factorial(2 * degree - 3) * q**(degree - 1) / 2)}
    for key in ("nngp", "ntk"):
        assert np.all(np.isfinite(ref[key])), "neural-tangents cross entries are finite"
        s = entry_scale(ref[key], diag[key][:3], diag[key][3:])
        rel = relative_errors(got[key], ref[key], s)
        assert np.max(rel) <= RTOL, describe(key, got[key], ref[key], s, RTOL)
    # ...and infntk's diagonal is the closed form (neural-tangents has NaN there).
    own = kernels(build(_ix_stax())[2], x, None)
    for key in ("nngp", "ntk"):
        np.testing.assert_allclose(np.diag(own[key]), diag[key], rtol=RTOL, atol=0, err_msg=key)
