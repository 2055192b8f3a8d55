"""K(x, x) with x2=None is exact even through square-root-singular duals (Sign, arcsin types).

For Dense(b) >> Sign >> Dense(W, b) the exact diagonal is W^2 E[sign(u)^2] + b^2 = W^2 + b^2, at any
depth, independent of the inputs. Duals with a square-root branch at rho = 1 turn an ulp of
inconsistency between K(x, x) and the reported variance into ~1e-8, and a second such layer into
~1e-4; infntk keeps the two identical, so the diagonal is exact to rounding.
"""
import jax
import numpy as np
import pytest

import infntk as nk


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_sign_stack_diagonal_exact(depth):
    jax.config.update("jax_enable_x64", True)
    w, b = 1.1, 0.05
    layers = [nk.Dense(8, W_std=w, b_std=b)]
    for _ in range(depth):
        layers += [nk.Sign(), nk.Dense(8, W_std=w, b_std=b)]
    model = nk.serial(*layers)
    x = np.random.default_rng(depth).normal(size=(6, 5))
    k = np.asarray(model.kernel(x, None, get="nngp"))
    np.testing.assert_allclose(np.diag(k), w**2 + b**2, rtol=1e-14)


def test_conv_sign_diagonal_exact():
    jax.config.update("jax_enable_x64", True)
    model = nk.serial(nk.Conv(4, (3, 3), padding="CIRCULAR", W_std=1.1, b_std=0.05), nk.Sign(),
                      nk.Conv(4, (3, 3), padding="CIRCULAR", W_std=1.1, b_std=0.05), nk.Sign(),
                      nk.Flatten(), nk.Dense(1, W_std=1.1, b_std=0.05))
    x = np.random.default_rng(0).normal(size=(4, 5, 5, 2))
    k = np.asarray(model.kernel(x, None, get="nngp"))
    np.testing.assert_allclose(np.diag(k), 1.1**2 + 0.05**2, rtol=1e-14)
