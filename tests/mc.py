"""Monte Carlo of finite networks: the independent route for every closed form.

For a model built at finite width, draws ``n_seeds`` networks with ``model.init`` and estimates

* the NNGP as the mean over seeds (and output channels) of :math:`f(x_1) f(x_2)`,
* the NTK as the mean over seeds of :math:`J(x_1) J(x_2)^T` (Jacobian contraction, own code),

with the standard error of each entry from the spread across seeds. Tolerances in the tests are
multiples of that standard error, not fixed numbers.
"""
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree


def empirical(model, x1, x2, n_seeds: int, seed: int = 0, ntk: bool = True, chunk: int = 8):
    """Per-seed empirical NNGP and NTK, shapes ``(n_seeds, N1, N2)``."""
    x = jnp.concatenate([x1, x2], 0)
    n1 = x1.shape[0]

    def one(key):
        _, params = model.init(key, x.shape)
        flat, unravel = ravel_pytree(params)

        def f(p):
            return model.apply(unravel(p), x)

        out = f(flat)
        out = out.reshape(out.shape[0], -1)
        c = out.shape[1]
        nngp = out[:n1] @ out[n1:].T / c
        if not ntk:
            return nngp, jnp.zeros_like(nngp)
        jac = jax.jacrev(lambda p: f(p).reshape(x.shape[0], -1))(flat)   # (N, C, P)
        theta = jnp.einsum("ncp,mcp->nm", jac[:n1], jac[n1:]) / c
        return nngp, theta

    keys = jax.random.split(jax.random.PRNGKey(seed), n_seeds)
    run = jax.jit(lambda ks: jax.lax.map(one, ks))
    outs = [run(keys[i:i + chunk]) for i in range(0, n_seeds, chunk)]
    nngp = np.concatenate([np.asarray(o[0]) for o in outs])
    theta = np.concatenate([np.asarray(o[1]) for o in outs])
    return nngp, theta


def assert_close_mc(samples, exact, z: float = 5.0, name: str = ""):
    """Assert every entry of ``exact`` lies within ``z`` standard errors of the Monte Carlo mean.

    ``z = 5`` keeps the family-wise false-alarm rate below 1e-4 for up to ~100 entries per check
    (two-sided normal tail 5.7e-7 per entry); the estimate's own bias is O(1/width) and the
    widths are chosen so that it is well below one standard error.
    """
    samples = np.asarray(samples)
    mean = samples.mean(0)
    se = samples.std(0, ddof=1) / np.sqrt(samples.shape[0])
    exact = np.asarray(exact)
    dev = np.abs(mean - exact)
    # entries with zero spread (exact by construction, e.g. a zero NTK) must match to rounding
    tol = z * se + 1e-12 * (1 + np.abs(exact))
    worst = np.max(dev / np.maximum(se, 1e-300))
    assert np.all(dev <= tol), (
        f"{name}: Monte Carlo disagrees with the closed form; worst deviation {worst:.2f} SE\n"
        f"mean=\n{mean}\nexact=\n{exact}\nse=\n{se}")
    return worst
