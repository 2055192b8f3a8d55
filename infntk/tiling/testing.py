r"""Small self-contained reference models for the tiling machinery (tests, examples, benchmarks).

They follow the model contract of ``docs/CONTRACTS.md`` -- ``model.kernel(x1, x2=None, get=...)`` --
without depending on the layer library, so that the tiling code can be exercised on its own and
shipped to Dask workers by reference (they live in an importable module).

* :class:`ArcCosine` -- one hidden ReLU layer, NTK parameterization:

  .. math::
     K_0 = \sigma_w^2\, x^\top x' / d + \sigma_b^2,\qquad
     K_1 = \sigma_w^2\, \tfrac{\sqrt{q_{11} q_{22}}}{2\pi}\big(\sin\theta + (\pi-\theta)\cos\theta\big)
           + \sigma_b^2,\qquad
     \Theta_1 = K_1 + \sigma_w^2\, K_0\, \tfrac{\pi-\theta}{2\pi},

  with :math:`\cos\theta = K_0(x,x') / \sqrt{K_0(x,x)K_0(x',x')}` (Cho & Saul 2009).
* :class:`PixelPairs` -- the same layer applied to every pixel of an image, then a global average
  pool: the kernel averages the arc-cosine map over all pairs of positions, so its working memory
  grows like :math:`(HW)^2` per pair of images (a stand-in for CNN-GAP kernels).
* :class:`Slow` -- wraps a model and sleeps ``delay`` seconds per call (via :func:`jax.pure_callback`),
  to make interruption tests deterministic. The values are those of the wrapped model.

Example:
    >>> import numpy as np
    >>> k = ArcCosine().kernel(np.ones((3, 4)), None, get="nngp")
    >>> k.shape
    (3, 3)
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from infntk.results import namedtuple_class

KernelPair = namedtuple_class("KernelPair", ("nngp", "ntk"))


def _select(out: KernelPair, get):
    if isinstance(get, str):
        return getattr(out, get)
    return out


def _relu_duals(q11, q12, q22):
    norm = jnp.sqrt(q11 * q22)
    cos = jnp.clip(q12 / norm, -1.0, 1.0)
    theta = jnp.arccos(cos)
    t = norm / (2 * jnp.pi) * (jnp.sin(theta) + (jnp.pi - theta) * cos)
    dt = (jnp.pi - theta) / (2 * jnp.pi)
    return t, dt


@dataclasses.dataclass(frozen=True)
class ArcCosine:
    """One hidden ReLU layer (NTK parameterization); inputs (N, d)."""

    W_std: float = 1.5
    b_std: float = 0.05

    def kernel(self, x1, x2=None, get=("nngp", "ntk")):
        x1 = jnp.asarray(x1)
        x2 = x1 if x2 is None else jnp.asarray(x2)
        d = x1.shape[-1]
        w2, b2 = self.W_std**2, self.b_std**2
        k0 = w2 * (x1 @ x2.T) / d + b2
        q1 = w2 * jnp.sum(x1 * x1, -1) / d + b2
        q2 = w2 * jnp.sum(x2 * x2, -1) / d + b2
        t, dt = _relu_duals(q1[:, None], k0, q2[None, :])
        nngp = w2 * t + b2
        ntk = nngp + w2 * k0 * dt
        return _select(KernelPair(nngp, ntk), get)


@dataclasses.dataclass(frozen=True)
class PixelPairs:
    """Per-pixel ReLU layer + global average pool over all position pairs; inputs (N, H, W, C)."""

    W_std: float = 1.5
    b_std: float = 0.05

    def kernel(self, x1, x2=None, get=("nngp", "ntk")):
        x1 = jnp.asarray(x1)
        x2 = x1 if x2 is None else jnp.asarray(x2)
        n1, n2, c = x1.shape[0], x2.shape[0], x1.shape[-1]
        a = x1.reshape(n1, -1, c)
        b = x2.reshape(n2, -1, c)
        w2, b2 = self.W_std**2, self.b_std**2
        k0 = w2 * jnp.einsum("npc,mqc->nmpq", a, b) / c + b2
        q1 = w2 * jnp.sum(a * a, -1) / c + b2
        q2 = w2 * jnp.sum(b * b, -1) / c + b2
        t, dt = _relu_duals(q1[:, None, :, None], k0, q2[None, :, None, :])
        nngp = jnp.mean(w2 * t + b2, axis=(2, 3))
        ntk = nngp + jnp.mean(w2 * k0 * dt, axis=(2, 3))
        return _select(KernelPair(nngp, ntk), get)


def _sleep_identity(delay):
    def cb(x):
        time.sleep(delay)
        return np.asarray(x)

    return cb


@dataclasses.dataclass(frozen=True)
class Slow:
    """``model`` with an artificial ``delay`` (seconds) per kernel call; same values."""

    model: object
    delay: float = 0.1

    def kernel(self, x1, x2=None, get=("nngp", "ntk")):
        x1 = jnp.asarray(x1)
        x1 = jax.pure_callback(
            _sleep_identity(self.delay), jax.ShapeDtypeStruct(x1.shape, x1.dtype), x1
        )
        return self.model.kernel(x1, x2, get=get)
