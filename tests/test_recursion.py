"""infntk.recursion: the model's kernel recursion as an object.

What is proved here:
* the closed form of a one-hidden-layer ReLU network *is* the textbook arc-cosine NNGP/NTK
  (symbolically, ``simplify(difference) == 0``);
* polynomial activations give exactly the hand-derived polynomial kernels (``expand`` equality),
  in both parameterizations (the standard one through the fan-in ``d``);
* the compiled closed form equals ``model.kernel`` to 1e-12 (float64) for deep ReLU/Erf MLPs with
  biases, both parameterizations, and with LayerNorm, residual sums and concatenations;
* text and LaTeX render every layer kind (conv, pooling, flatten, GAP, LayerNorm, branches) and say
  which route computed each dual.
"""
import dataclasses
import doctest
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

import infntk as nk
from infntk.errors import InfntkError
from infntk.recursion import render
from infntk.recursion import XX, XY, YY, NotSymbolic, Recursion, recursion
from infntk.recursion.symbols import LATEX_NAMES

THETA = sp.acos(XY / sp.sqrt(XX * YY))


def _symbolic_sigma(rec):
    """The symbolic closed form with every layer's σ_w set to one symbol σ and σ_b to 0."""
    nngp, ntk = rec.closed_form(params="symbolic")
    s = sp.Symbol("sigma", positive=True)
    sub = {p: (s if str(p).startswith("σ_w") else 0) for p in rec.parameters()}
    return nngp.xreplace(sub), ntk.xreplace(sub), s


# ------------------------------------------------------------------------- (1) ReLU, textbook

def test_relu_one_hidden_layer_is_the_arccosine_kernel():
    model = nk.Dense(7, W_std=1.5, b_std=0.0) >> nk.Relu() >> nk.Dense(1, W_std=1.5)
    rec = model.recursion()
    nngp, ntk, s = _symbolic_sigma(rec)
    textbook_nngp = s**4 * sp.sqrt(XX * YY) / (2 * sp.pi) * (sp.sin(THETA) + (sp.pi - THETA) * sp.cos(THETA))
    textbook_ntk = textbook_nngp + s**4 * XY * (sp.pi - THETA) / (2 * sp.pi)
    assert sp.simplify(nngp - textbook_nngp) == 0
    assert sp.simplify(ntk - textbook_ntk) == 0
    # numeric hyperparameters: the same with σ = 3/2, exactly
    n_num, t_num = rec.closed_form()
    assert sp.simplify(n_num - textbook_nngp.subs(s, sp.Rational(3, 2))) == 0
    assert sp.simplify(t_num - textbook_ntk.subs(s, sp.Rational(3, 2))) == 0
    assert rec.parameters() == {sym: v for sym, v in rec.parameters().items()}
    assert sorted(rec.parameters().values()) == [0.0, 1.5, 1.5]


# ------------------------------------------------------------------------- (2) polynomials

def test_monomial_closed_form_is_the_exact_polynomial_kernel():
    model = nk.Dense(5, W_std=2.0, b_std=1.0) >> nk.Monomial(2) >> nk.Dense(1, W_std=3.0, b_std=0.5)
    nngp, ntk = model.recursion().closed_form()
    k1, k11, k22 = 4 * XY + 1, 4 * XX + 1, 4 * YY + 1      # first layer
    T = k11 * k22 + 2 * k1**2                             # E[u² v²] (Isserlis)
    dT = 4 * k1                                           # ∂T/∂q12
    expect_nngp = 9 * T + sp.Rational(1, 4)
    expect_ntk = expect_nngp + 9 * dT * k1                # Θ¹ = K¹ (Θ⁰ = 0)
    assert sp.expand(nngp - expect_nngp) == 0
    assert sp.expand(ntk - expect_ntk) == 0


def test_polynomial_standard_parameterization_uses_the_fan_in():
    def model(param):
        return (nk.Dense(8, W_std=2.0, b_std=1.0, parameterization=param)
                >> nk.Polynomial([1, 2, 3])
                >> nk.Dense(1, W_std=1.0, parameterization=param))

    def T(q11, q12, q22):      # E[(1 + 2u + 3u²)(1 + 2v + 3v²)]
        return 1 + 3 * q11 + 3 * q22 + 4 * q12 + 9 * (q11 * q22 + 2 * q12**2)

    def dT(q11, q12, q22):
        return 4 + 36 * q12

    k = (4 * XX + 1, 4 * XY + 1, 4 * YY + 1)
    # standard: Θ¹ = d·xy + 1 (fan-in d, bias), Θ³ = 8·T(K¹) + Θ² (fan-in 8, no bias)
    nngp, ntk = model("standard").recursion(input_shape=(None, 3)).closed_form()
    assert sp.expand(nngp - T(*k)) == 0
    assert sp.expand(ntk - (8 * T(*k) + dT(*k) * (3 * XY + 1))) == 0
    # without the input shape the fan-in stays the symbol d, and compile() asks for it
    rec_d = model("standard").recursion()
    _, ntk_d = rec_d.closed_form()
    d = [s for s in ntk_d.free_symbols if str(s) == "d"]
    assert len(d) == 1 and sp.expand(ntk_d.subs(d[0], 3) - ntk) == 0
    with pytest.raises(InfntkError, match="input_shape"):
        rec_d.compile()
    # NTK parameterization: Θ³ = K³ + T'(K¹)·K¹
    nngp, ntk = model("ntk").recursion().closed_form()
    assert sp.expand(ntk - (T(*k) + dT(*k) * k[1])) == 0


# ------------------------------------------------------------------------- (3) numbers

def _stats(x1, x2):
    d = x1.shape[-1]
    return (jnp.sum(x1**2, -1)[:, None] / d, x1 @ x2.T / d, jnp.sum(x2**2, -1)[None, :] / d)


def _inputs(d=3):
    k1, k2 = jax.random.split(jax.random.PRNGKey(3))
    return (jax.random.normal(k1, (4, d), dtype=jnp.float64),
            jax.random.normal(k2, (3, d), dtype=jnp.float64))


def _mlp(act, param, depth):
    layers = [nk.Dense(16, W_std=1.3, b_std=0.2, parameterization=param)]
    for _ in range(depth - 1):
        layers += [act, nk.Dense(16, W_std=1.4, b_std=0.3, parameterization=param)]
    layers += [act, nk.Dense(1, W_std=1.1, b_std=0.1, parameterization=param)]
    return nk.serial(*layers)


MODELS = {
    "relu-ntk-4": lambda: _mlp(nk.Relu(), "ntk", 3),
    "relu-standard-3": lambda: _mlp(nk.Relu(), "standard", 2),
    "erf-ntk-3": lambda: _mlp(nk.Erf(1.2, 0.7, 0.1), "ntk", 2),
    "erf-standard-4": lambda: _mlp(nk.Erf(), "standard", 3),
    "relu-standard-s": lambda: nk.serial(   # width scalings s: NTK terms n/s_0 = 3, 16, 16
        nk.Dense(16, W_std=1.3, b_std=0.2, parameterization="standard", s=(1, 3)), nk.Relu(),
        nk.Dense(16, W_std=1.4, parameterization="standard", s=(3, 2)), nk.Erf(),
        nk.Dense(1, W_std=1.1, b_std=0.1, parameterization="standard", s=(2, 1))),
    "residual-layernorm-concat": lambda: (
        nk.Dense(8, W_std=1.2, b_std=0.1)
        >> ((nk.Dense(8, W_std=1.5, b_std=0.2) >> nk.Relu() >> nk.Dense(8)) + nk.Identity())
        >> nk.LayerNorm() >> (nk.Relu() + nk.Identity())      # elementwise sum: one merged dual
        >> (nk.Dense(4, b_std=0.1) | nk.Dense(12, W_std=2.0))
        >> nk.Erf(1.0, 1.0, 0.5) >> nk.Dense(1, W_std=1.5, b_std=0.1)),
    "fanout-parallel": lambda: nk.serial(
        nk.Dense(8, b_std=0.1), nk.FanOut(2), nk.parallel(nk.Relu(), nk.Dense(8, W_std=2.0)),
        nk.FanInSum(), nk.Dense(8, b_std=0.2), nk.Erf(), nk.Dense(1)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_compiled_closed_form_equals_model_kernel(name):
    model = MODELS[name]()
    x1, x2 = _inputs()
    rec = model.recursion(input_shape=(None, 3))
    nngp, ntk = rec.compile()(*_stats(x1, x2))
    want = model.kernel(x1, x2, get=("nngp", "ntk"))
    assert nngp.dtype == jnp.float64
    np.testing.assert_allclose(nngp, want.nngp, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ntk, want.ntk, rtol=1e-12, atol=1e-12)
    assert rec.lambdify is not None and jax.jit(rec.compile())(*_stats(x1, x2))[0].shape == (4, 3)


def test_compiled_closed_form_zero_input_is_finite():
    model = nk.Dense(8) >> nk.Relu() >> nk.Dense(1)
    x = jnp.array([[0.0, 0.0], [1.0, 2.0]])
    nngp, ntk = model.recursion().compile()(*_stats(x, x))
    np.testing.assert_allclose(nngp, model.kernel(x, get="nngp"), atol=1e-12)
    np.testing.assert_allclose(ntk, model.kernel(x, get="ntk"), atol=1e-12)


# ------------------------------------------------------------------------- (4) rendering

def _latex_ok(s: str):
    assert "None" not in s and "nan" not in s
    assert s.count("{") == s.count("}")
    assert s.count(r"\left") == s.count(r"\right")


def test_text_and_latex_render_every_layer_kind():
    model = (nk.Conv(8, (3, 3), padding="SAME", W_std=1.5, b_std=0.1) >> nk.Relu()
             >> nk.AvgPool((2, 2), (2, 2))
             >> nk.Conv(8, (3, 3), strides=(2, 2), parameterization="standard", b_std=0.1)
             >> nk.LayerNorm(axis=(1, 2, 3))
             >> ((nk.Conv(4, (1, 1)) >> nk.Erf()) | nk.Conv(4, (1, 1)))
             >> nk.GlobalAvgPool() >> nk.Dense(4) >> (nk.Relu() + nk.Dense(4)) >> nk.Dense(1))
    rec = model.recursion(input_shape=(None, 8, 8, 3))
    txt = rec.text()
    for piece in ["K⁽¹⁾ = σ_w²·A_{3×3,s=1,SAME}[K⁽⁰⁾] + σ_b²",
                  "Θ⁽¹⁾ = K⁽¹⁾ + σ_w²·A_{3×3,s=1,SAME}[Θ⁽⁰⁾]",
                  "K⁽²⁾ = T_relu(K₁₁⁽¹⁾, K⁽¹⁾, K₂₂⁽¹⁾)",
                  "Θ⁽²⁾ = T'_relu(K₁₁⁽¹⁾, K⁽¹⁾, K₂₂⁽¹⁾)·Θ⁽¹⁾",
                  "K⁽³⁾ = pool_{2×2,s=2,VALID}[K⁽²⁾]",
                  "Θ⁽⁴⁾ = n·A_{3×3,s=2,VALID}[K⁽³⁾] + σ_w²·A_{3×3,s=2,VALID}[Θ⁽³⁾] + 1",
                  "n = 72", "mean_s[K₁₁⁽⁴⁾]",
                  "branch a:", "branch b:", "(1/2)·K⁽⁵·ᵃ·²⁾ + (1/2)·K⁽⁵·ᵇ·¹⁾",
                  "K⁽⁷⁾ = mean_{s,s'}[K⁽⁶⁾]",
                  "[dual: closed-form]", "T_{erf(1, 1, 0)}(q₁₁, q₁₂, q₂₂) = 2*asin("]:
        assert piece in txt, piece
    # relu branch + centred Gaussian (Dense) branch: kernels add, no cross term of means
    assert "K⁽⁹⁾ = K⁽⁸·ᵃ·¹⁾ + K⁽⁸·ᵇ·¹⁾," in txt
    # one line per top-level layer, plus the input line; branch lines are indented
    top = [l for l in txt.splitlines() if not l.startswith(" ")]
    assert len(top) == len(model.layers) + 1 == len(rec) + 1
    # numeric: values substituted exactly
    assert "K⁽¹⁾ = (9/4)·A_{3×3,s=1,SAME}[K⁽⁰⁾] + 1/100" in rec.text(numeric=True)
    tex = rec.latex()
    _latex_ok(tex)
    for piece in [r"\mathcal{A}_{3\times 3,\,s=1,\,\mathrm{SAME}}\left[K^{(0)}\right]",
                  r"\mathrm{pool}_{2\times 2,\,s=2,\,\mathrm{VALID}}\left[K^{(2)}\right]",
                  r"\mathrm{mean}_{s,s'}\left[K^{(6)}\right]", r"\mathrm{mean}_{s}",
                  r"T_{\mathrm{relu}}\left(K_{11}^{(1)}, K^{(1)}, K_{22}^{(1)}\right)",
                  r"\Theta^{(1)} = K^{(1)} + \sigma_w^{2}\,", r"\text{branch a:}",
                  r"\begin{aligned}", r"\end{aligned}"]:
        assert piece in tex, piece
    assert tex.count(r"\\") >= len(rec)
    # every step's equations are sympy objects that sympy's own printers handle
    for step in rec:
        for eq in step.equations:
            assert isinstance(eq, sp.Eq)
            s = sp.latex(eq, symbol_names=LATEX_NAMES)
            _latex_ok(s)
            assert "=" in s
    # sympy's printer and ours agree up to the order of factors (ours: hyperparameters first)
    assert sp.latex(rec[-1].nngp, symbol_names=LATEX_NAMES) == r"K^{(9)} \sigma_w^{2}"
    assert render.expr_latex(rec[-1].nngp) == r"\sigma_w^{2}\,K^{(9)}"


def test_fully_connected_text_reads_like_the_paper():
    model = nk.Dense(512, W_std=1.5, b_std=0.05) >> nk.Relu() >> nk.Dense(1, W_std=1.5, b_std=0.05,
                                                                         parameterization="standard")
    rec = model.recursion(input_shape=(None, 10))
    lines = str(rec).splitlines()
    assert lines[0] == "K⁽⁰⁾ = x·x'/d,  K₁₁⁽⁰⁾ = ‖x‖²/d,  K₂₂⁽⁰⁾ = ‖x'‖²/d,  Θ⁽⁰⁾ = 0"
    assert lines[1].startswith("Dense(512):  K⁽¹⁾ = σ_w²·K⁽⁰⁾ + σ_b²,  Θ⁽¹⁾ = K⁽¹⁾ + σ_w²·Θ⁽⁰⁾")
    assert "where σ_w = 1.5, σ_b = 0.05" in lines[1]
    assert "T_relu(q₁₁, q₁₂, q₂₂) = " in lines[2] and "acos" in lines[2]
    assert lines[3].startswith("Dense(1):  K⁽³⁾ = σ_w²·K⁽²⁾ + σ_b²,  Θ⁽³⁾ = n·K⁽²⁾ + σ_w²·Θ⁽²⁾ + 1")
    assert "n = 512" in lines[3]
    # the step objects carry the same equations
    k3, t3 = rec[2].equations
    w, b, n = (s for s, _ in rec[2].params)
    assert sp.simplify(k3.rhs - (w**2 * rec[1].equations[0].lhs + b**2)) == 0
    assert rec[2].params[2][1] == 512 and rec[1].kind == "activation" and rec[0].kind == "dense"


def test_recursion_is_immutable():
    rec = (nk.Dense(4) >> nk.Relu()).recursion()
    assert isinstance(rec, Recursion) and isinstance(rec.steps, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.steps = ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec[0].nngp = 0


# ------------------------------------------------------------------------- (5) routes, errors

def test_user_activation_prints_its_route():
    x = sp.Symbol("x")
    rec = (nk.Dense(4) >> nk.Activation(sp.tanh(x)) >> nk.Dense(1)).recursion()
    txt = rec.text()
    assert "quadrature" in txt and "T_{tanh(x)}(K₁₁⁽¹⁾, K⁽¹⁾, K₂₂⁽¹⁾)" in txt
    assert rec[1].note.startswith("dual: quadrature")
    assert "quadrature" in rec.latex()
    with pytest.raises(NotSymbolic, match="quadrature"):
        rec.closed_form()
    # a Hermite-series dual says so, with its truncation
    rec_h = (nk.Dense(4) >> nk.Activation(sp.sin(x) + x) >> nk.Dense(1)).recursion()
    assert "dual: hermite (truncated at degree" in rec_h.text()
    # a second nonlinearity is composed with the first, against the Gaussian pre-activation
    rec_c = (nk.Dense(4) >> nk.Relu() >> nk.Monomial(2) >> nk.Dense(1)).recursion()
    assert "(K₁₁⁽¹⁾, K⁽¹⁾, K₂₂⁽¹⁾)" in rec_c.text().splitlines()[3]


def test_recursion_refuses_what_the_kernel_refuses():
    model = nk.serial(nk.Dense(8), nk.FanOut(2), nk.parallel(nk.Relu(), nk.Dense(8)),
                      nk.FanInSum(), nk.Relu(), nk.Dense(1))
    with pytest.raises(InfntkError, match="Relu"):
        model.kernel(jnp.ones((2, 3)))
    with pytest.raises(InfntkError, match="layer #4 Relu"):
        model.recursion()


def test_closed_form_refuses_spatial_models():
    rec = (nk.Conv(4, (3, 3)) >> nk.Flatten() >> nk.Dense(1)).recursion()
    with pytest.raises(NotSymbolic, match="fully-connected"):
        rec.closed_form()
    with pytest.raises(InfntkError):
        recursion("not a layer")
    with pytest.raises(InfntkError):
        (nk.Dense(4) >> nk.Relu()).recursion(input_shape=(3,))


@pytest.mark.parametrize("name", ["infntk.recursion", "infntk.recursion.symbols",
                                  "infntk.recursion.steps", "infntk.recursion.render",
                                  "infntk.recursion.closed_form", "infntk.recursion.evaluate",
                                  "infntk.recursion.symbolic_ops", "infntk.plan",
                                  "infntk.layers.sum_pool", "infntk.finite"])
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_evaluate_in_float32():
    """The printed recursion evaluates in the inputs' dtype: float32 in, float32 out, equal to
    model.kernel to float32 rounding (a few ulp per layer)."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 6, 6, 2)), jnp.float32)
    model = (nk.Conv(4, (3, 3), padding="SAME") >> nk.Relu() >> nk.SumPool((2, 2), (2, 2))
             >> nk.Conv(3, (1, 1)) >> nk.LayerNorm(axis=(1, 2, 3)) >> nk.Conv(2, (2, 2)) >> nk.Erf()
             >> nk.GlobalAvgPool() >> nk.Dense(1))
    want = model.kernel(x, x[:3], get=("nngp", "ntk"))
    got = model.recursion().evaluate(x, x[:3])
    for a, b in ((got.nngp, want.nngp), (got.ntk, want.ntk)):
        assert a.dtype == jnp.float32
        np.testing.assert_allclose(a, b, rtol=1e-5)
