"""Bad input gets a clear InfntkError naming the layer and the problem."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import infntk as nk
from infntk import stax


def raises(match):
    return pytest.raises(nk.InfntkError, match=match)


def test_feature_size_mismatch_between_x1_and_x2():
    model = nk.Dense(3) >> nk.Relu() >> nk.Dense(1)
    with raises(r"x1 \(2, 3\) and x2 \(2, 4\).*feature-size mismatch"):
        model.kernel(jnp.ones((2, 3)), jnp.ones((2, 4)))


def test_conv_given_inputs_without_spatial_axes():
    with raises(r"layer #0 Conv\(4, \(3, 3\).*without spatial axes"):
        (nk.Conv(4, (3, 3)) >> nk.Flatten()).kernel(jnp.ones((2, 5)))


def test_branches_with_mismatched_shapes_in_sum():
    with raises(r"branches must produce the same shape.*\(2, 3\).*\(2, 4\)"):
        (nk.Dense(3) + nk.Dense(4)).kernel(jnp.ones((2, 5)))


def test_unknown_padding_name():
    with raises(r"Conv\(4, \(3, 3\)\): unknown padding 'FULL'"):
        nk.Conv(4, (3, 3), padding="FULL")
    with raises(r"AvgPool.*unknown padding 'valid2'"):
        nk.AvgPool((2, 2), padding="valid2")


def test_negative_W_std_and_b_std():
    with raises(r"Dense\(3\): W_std must be finite and non-negative, got -1.0"):
        nk.Dense(3, W_std=-1.0)
    with raises(r"b_std must be finite and non-negative"):
        nk.Conv(3, (2,), b_std=-0.1)
    with raises(r"W_std must be finite"):
        nk.Dense(3, W_std=float("nan"))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinite_inputs(bad):
    x = np.ones((3, 4))
    x[1, 2] = bad
    with raises(r"x1 contains 1 NaN or infinite value"):
        (nk.Dense(3) >> nk.Relu()).kernel(x)
    with raises(r"x2 contains 1 NaN or infinite value"):
        nk.Dense(3).kernel(np.ones((2, 4)), x)


def test_stride_or_window_larger_than_input():
    with raises(r"filter \(5, 5\) is larger than the input's spatial shape \(4, 4\)"):
        (nk.Conv(2, (5, 5)) >> nk.Flatten()).kernel(jnp.ones((1, 4, 4, 1)))
    with raises(r"window \(3, 3\) is larger than the input's spatial shape \(2, 2\)"):
        nk.AvgPool((3, 3)).kernel(jnp.ones((1, 2, 2, 1)))


def test_error_names_the_position_in_a_deep_model():
    model = nk.Dense(4) >> nk.Relu() >> nk.Conv(2, (2, 2)) >> nk.Flatten()
    with raises(r"^layer #2 Conv\(2, \(2, 2\)"):
        model.kernel(jnp.ones((2, 3)))


def test_layer_that_cannot_follow_another():
    # an activation after pooling of nonlinear features: neither Gaussian nor elementwise of one
    model = nk.Conv(2, (2, 2)) >> nk.Relu() >> nk.AvgPool((2, 2)) >> nk.Erf() >> nk.Flatten()
    with raises(r"Erf.*neither Gaussian nor an elementwise function"):
        model.kernel(jnp.ones((1, 4, 4, 1)))


def test_bad_constructor_arguments():
    with raises(r"out_dim must be a positive integer"):
        nk.Dense(0)
    with raises(r"filter_shape must be a tuple of positive integers"):
        nk.Conv(2, "abc")
    with raises(r"strides must have 2 entries"):
        nk.Conv(2, (3, 3), strides=(1,))
    with raises(r"unknown parameterization 'mup'"):
        nk.Dense(2, parameterization="mup")
    with raises(r"degree must be a non-negative integer"):
        nk.Monomial(-1)
    with raises(r"channel axis"):
        nk.LayerNorm(axis=1).kernel(jnp.ones((2, 3, 3, 2)))
    with raises(r"unknown get='nngpp'"):
        nk.Dense(2).kernel(jnp.ones((2, 3)), get="nngpp")
    with raises(r"both sides must be infntk layers"):
        nk.Dense(2) >> (lambda x: x)


def test_stax_facade_rejects_unsupported_axes():
    with raises(r"only batch_axis=0 and channel_axis=-1"):
        stax.Dense(3, channel_axis=1)


def test_errors_are_value_errors_without_jax_traces():
    try:
        nk.Dense(3).kernel(jnp.ones((2, 3)), jnp.ones((2, 4)))
    except ValueError as e:
        assert "Traceback" not in str(e) and "jax" not in str(e).lower()


@pytest.mark.parametrize("bad", [(0, 1), (1, -2), (1.0, 2), (1.5, 1), (True, 1), (2,), (1, 2, 3), "ab", 2])
def test_bad_width_scalings_s(bad):
    with raises(r"Dense\(3\): s must be a pair of positive integers \(s_in, s_out\)"):
        nk.Dense(3, parameterization="standard", s=bad)
    with raises(r"Conv\(2, \(3,\)\): s must be a pair of positive integers"):
        nk.Conv(2, (3,), parameterization="standard", s=bad)
    with raises(r"Dense\(3\): s must be a pair"):
        stax.Dense(3, parameterization="standard", s=bad)


def test_width_scalings_s_have_no_effect_under_ntk_parameterization():
    # as neural-tangents: s only rescales the standard parameterization
    x = jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)
    plain = nk.Dense(5, W_std=1.3, b_std=0.1) >> nk.Relu() >> nk.Dense(1)
    scaled = nk.Dense(5, W_std=1.3, b_std=0.1, s=(1, 3)) >> nk.Relu() >> nk.Dense(1, s=(3, 1))
    assert scaled.init(jax.random.PRNGKey(0), (3, 4))[1][0][0].shape == (4, 5)  # not 4 x 15
    np.testing.assert_array_equal(scaled.kernel(x, get="ntk"), plain.kernel(x, get="ntk"))


def _two_branches(*branches, axis=1):
    return nk.serial(nk.Conv(3, (2, 2), padding="SAME"), nk.FanOut(len(branches)),
                     nk.parallel(*branches), nk.FanInConcat(axis=axis))


def test_fan_in_concat_bad_axis():
    x = jnp.ones((2, 4, 4, 1))
    with raises(r"FanInConcat\(axis=0\): cannot concatenate along the batch axis"):
        _two_branches(nk.Conv(2, (1, 1)), nk.Conv(2, (1, 1)), axis=0).kernel(x)
    with raises(r"FanInConcat\(axis=4\): axis 4 is out of range for inputs with 4 axes"):
        _two_branches(nk.Conv(2, (1, 1)), nk.Conv(2, (1, 1)), axis=4).kernel(x)
    with raises(r"FanInConcat.*axis must be an integer, got 1.5"):
        nk.FanInConcat(1.5)


def test_fan_in_concat_along_space_refuses_what_it_cannot_know():
    x = jnp.ones((2, 4, 4, 1))
    # shapes must agree off the concatenation axis (here: channels 2 vs 3)
    with raises(r"FanInConcat\(axis=1\): branches must agree in every axis but axis 1.*"
                r"\(2, 4, 4, 2\).*\(2, 4, 4, 3\)"):
        _two_branches(nk.Conv(2, (1, 1)), nk.Conv(3, (1, 1))).kernel(x)
    # a branch ending in a nonlinearity is not Gaussian (neural-tangents refuses this too)
    with raises(r"layer #3 FanInConcat\(axis=1\): branch 0 is not Gaussian"):
        _two_branches(nk.Relu(), nk.Conv(3, (1, 1))).kernel(x)
    # the raw input is not a Gaussian feature
    raw = nk.serial(nk.FanOut(2), nk.parallel(nk.Identity(), nk.Conv(1, (1, 1))), nk.FanInConcat(1))
    with raises(r"FanInConcat\(axis=1\): branch 0 is the raw input"):
        raw.kernel(x)
    # two branches without their own weights: their cross covariance is not zero
    with raises(r"FanInConcat\(axis=2\): branches 0 and 1 are not known to be independent"):
        _two_branches(nk.Identity(), nk.Identity(), axis=2).kernel(x)
    # a residual sum is Gaussian but not fresh: it shares the identity part with branch 1
    with raises(r"branches 1 and 2 are not known to be independent"):
        _two_branches(nk.Conv(3, (1, 1)), nk.Identity(), nk.Conv(3, (1, 1)) + nk.Identity()).kernel(x)
    # without FanOut and parallel in front of it there are no branches: no kernel
    with raises(r"layer #1 FanInConcat\(axis=1\): expects a list of inputs \(after FanOut and parallel\)"):
        (nk.Conv(3, (1, 1)) >> nk.FanInConcat(axis=1)).kernel(x)
    # a list that is never joined has no single kernel either
    with raises(r"layer #1 FanOut\(num=2\): has a kernel only inside a FanOut\(n\) >> parallel"):
        nk.serial(nk.Conv(3, (1, 1)), nk.FanOut(2), nk.parallel(nk.Relu(), nk.Relu())).kernel(x)


def test_hermite_degree_is_named_as_given():
    for bad in (-2, 1.5, True):
        with raises(rf"Hermite\(degree={bad!r}\): degree must be a non-negative integer, got {bad!r}"):
            nk.Hermite(bad)
    assert nk.Hermite(0).dual.method and nk.Hermite(3).degree == 3


def test_complex_inputs_and_mismatched_apply_are_refused():
    model = nk.Dense(3) >> nk.Relu() >> nk.Dense(1)
    with raises(r"x1 is complex \(complex128\); the kernels are defined for real inputs"):
        model.kernel(jnp.ones((2, 4)) * (1 + 1j))
    with raises(r"x2 is complex"):
        model.kernel(jnp.ones((2, 4)), jnp.ones((2, 4), jnp.complex64))
    _, params = model.init(jax.random.PRNGKey(0), (2, 4))
    with raises(r"layer #0 Dense\(3\): its parameters take inputs with 4 features on the last "
                r"axis \(batch first\), got an input of shape \(2, 5\)"):
        model.apply(params, jnp.ones((2, 5)))
    conv = nk.Conv(2, (2, 2))
    _, p = conv.init(jax.random.PRNGKey(0), (1, 4, 4, 3))
    with raises(r"Conv\(2, \(2, 2\), padding='VALID'\): its parameters take inputs with 3 channels"):
        conv.apply(p, jnp.ones((1, 4, 4, 2)))


def test_non_finite_kernels_from_finite_inputs_name_the_layer():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 3)))
    mlp = nk.Dense(3) >> nk.Relu() >> nk.Dense(1)
    with raises(r"the inputs' covariance x·x'/d is not finite \(nngp, cov1\): the inputs are too "
                r"large for float64"):
        mlp.kernel(x * 1e200)
    with raises(r"too large for float32"):
        mlp.kernel((x * 1e20).astype(jnp.float32), get="ntk")
    exp = nk.Dense(3, W_std=3.0) >> nk.Exp(b=50.0) >> nk.Dense(1)
    with raises(r"layer #1 Exp\(a=1.0, b=50.0\): its output is not finite \(nngp, ntk, cov1 contain "
                r"NaN or inf\) although its input was"):
        exp.kernel(x, get=("nngp", "ntk"))
    # under the caller's jit nothing is known while tracing: check_finite on the result
    k = jax.jit(exp.kernel, static_argnames="get")(x, get="nngp")
    with raises(r"kernel: NaN or infinite values in the result"):
        nk.check_finite(k)
    good = mlp.kernel(x, get=("nngp", "ntk"))
    assert nk.check_finite(good) is good and nk.check_finite(mlp.kernel(x)) is not None
