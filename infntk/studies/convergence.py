r"""Monte Carlo convergence of finite-width empirical kernels to the infinite-width limit.

For a model family :math:`w \mapsto f_w` (hidden widths :math:`w`), ``S`` seeds per width and a
fixed small input set :math:`x`, each seed :math:`s` gives the empirical kernels

.. math::

    \hat K^{\mathrm{NNGP}}_s = \tfrac{1}{C}\, f_s(x) f_s(x)^\top, \qquad
    \hat\Theta_s = \tfrac{1}{c}\sum_{k<c} J_{s,k}(x) J_{s,k}(x)^\top,\quad
    J_{s,k} = \partial f_{s,k}/\partial\theta,

(output covariance averaged over the ``C`` output channels; NTK of the first ``c =
ntk_channels`` channels, by Jacobian contraction), and against the exact kernel :math:`K`
(``model.kernel``) the relative Frobenius errors

* single draw :math:`e_s = \|\hat K_s - K\|_F / \|K\|_F` (RMS over seeds),
* bias :math:`\|\bar K - K\|_F/\|K\|_F` of the seed mean :math:`\bar K`, and its debiased form
  :math:`\sqrt{\max(0, \|\bar K-K\|_F^2 - \mathrm{tr}\,\widehat{\mathrm{Cov}}/S)}/\|K\|_F`
  (the squared norm of the mean deviation overestimates :math:`\|E\hat K - K\|^2` by the
  variance of the mean),
* fluctuation :math:`\big(\tfrac{1}{S-1}\sum_s \|\hat K_s - \bar K\|_F^2\big)^{1/2}/\|K\|_F`.

Log–log slopes against width are fitted by least squares; their 95% intervals come from a
bootstrap that resamples seeds independently at each width. Theory (Hanin & Nica 2019; Dyer &
Gur-Ari 2019; Yaida 2020): fluctuations :math:`\propto w^{-1/2}`, bias :math:`\propto w^{-1}` (and
exactly zero for one hidden layer, whose pre-activations are exactly Gaussian).

The NNGP of a single draw only converges if the number of output channels grows with the width,
so by default the readout gets ``width`` channels too (``readout_width=True``).

Seeds are batched with :func:`jax.vmap`, in chunks sized to a memory budget; each width's
samples are written as JSON as soon as they are done (``out``), and a rerun skips finished widths
after checking that their configuration hash matches.

Example:
    >>> import numpy as np, infntk as nk
    >>> from infntk.studies.convergence import run_study
    >>> mf = lambda w: nk.Dense(w) >> nk.Relu() >> nk.Dense(w)
    >>> x = np.random.default_rng(0).normal(size=(3, 4))
    >>> r = run_study(mf, [8, 16, 32], 4, x, n_boot=50, progress=False)
    >>> sorted(r.fits["ntk"])
    ['bias', 'error', 'fluct']
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import time
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from infntk.errors import InfntkError
from infntk.studies import plots, report

__all__ = ["run_study", "run", "StudyResult", "sample_kernels", "kernel_metrics", "fit_slope",
           "bootstrap_slopes", "resolve_model_fn", "device_info", "THEORY", "KERNELS",
           "METRICS"]

KERNELS = ("nngp", "ntk")
METRICS = ("error", "bias", "fluct")
#: Theoretical log-log slopes against width (``bias`` is ``None``, i.e. exactly zero, at depth 1).
THEORY = {"error": -0.5, "bias": -1.0, "fluct": -0.5}
_WIDTH_FILE = "width_{:06d}.json"
_FORMAT = 1


# --------------------------------------------------------------------------- models

def _widen(layer, width: int, readout: bool):
    """Copy of an infntk layer with every Dense/Conv width set to ``width``."""
    import infntk as nk

    if isinstance(layer, nk.Dense):
        return dataclasses.replace(layer, out_dim=width)
    if isinstance(layer, nk.Conv):
        return dataclasses.replace(layer, out_chan=width)
    if not dataclasses.is_dataclass(layer):
        return layer
    changes = {}
    for f in dataclasses.fields(layer):
        v = getattr(layer, f.name)
        if isinstance(v, nk.Layer):
            changes[f.name] = _widen(v, width, True)
        elif isinstance(v, tuple) and v and all(isinstance(e, nk.Layer) for e in v):
            changes[f.name] = tuple(_widen(e, width, True) for e in v)
    return dataclasses.replace(layer, **changes) if changes else layer


def resolve_model_fn(model, readout_width: bool = True) -> tuple[Callable[[int], Any], str]:
    """``(width -> model, description)`` from a callable, an architecture string or a model.

    * a callable is used as is;
    * a string with a ``{w}`` (or ``{width}``) placeholder is formatted then parsed by
      :mod:`infntk.arch`; without one, every Dense/Conv width is replaced (the readout too when
      ``readout_width``, else only the hidden ones, as ``infntk.arch.with_width``);
    * an infntk layer: every Dense/Conv width is replaced (``readout_width``) — with
      ``readout_width=False`` the last layer of a serial model keeps its width.
    """
    import infntk as nk
    from infntk import arch as A

    if isinstance(model, str):
        src = model
        if "{w}" in src or "{width}" in src:
            return (lambda w: A.parse_model(src.replace("{width}", str(w)).replace("{w}", str(w))),
                    src)
        desc = A.parse(src)

        def build(w):
            d = A.with_width(desc, w)
            if readout_width:
                d = _widen_desc(d, w)
            return A.build(d, A.to_string(d))
        return build, src
    if isinstance(model, nk.Layer):
        def build(w):
            if readout_width or not isinstance(model, nk.Serial):
                return _widen(model, w, True)
            *hidden, last = model.layers
            return nk.Serial(tuple(_widen(h, w, True) for h in hidden) + (last,))
        return build, repr(model)
    if callable(model):
        return model, getattr(model, "__name__", repr(model))
    raise InfntkError(f"convergence: cannot make a model family from {type(model).__name__}; "
                      "give a function width -> model, an architecture string or an infntk layer.")


def _widen_desc(desc, w):
    from infntk import arch as A

    if isinstance(desc, A.Compose):
        return dataclasses.replace(desc, left=_widen_desc(desc.left, w),
                                   right=_widen_desc(desc.right, w))
    if desc.name in A.WIDTH_LAYERS:
        if desc.args:
            return dataclasses.replace(desc, args=(w,) + tuple(desc.args[1:]))
        return dataclasses.replace(desc, kwargs=tuple(
            (k, w if k in ("out_dim", "out_chan") else v) for k, v in desc.kwargs))
    return desc


# --------------------------------------------------------------------------- devices, memory

def device_info() -> dict:
    """The device the samples run on (the first of ``jax.devices()``)."""
    d = jax.devices()[0]
    return {"platform": d.platform, "kind": getattr(d, "device_kind", d.platform),
            "count": jax.device_count(), "jax": jax.__version__,
            "x64": bool(jax.config.read("jax_enable_x64"))}


def default_memory_budget() -> int:
    """Half the accelerator's memory, or 1 GiB on CPU."""
    d = jax.devices()[0]
    try:
        stats = d.memory_stats() or {}
    except Exception:  # pragma: no cover - backends without memory stats
        stats = {}
    if d.platform != "cpu" and stats.get("bytes_limit"):
        return int(stats["bytes_limit"] * 0.5)
    return 2 ** 30


def _per_seed_bytes(model, shape, ntk_channels, itemsize) -> int:
    out_shape, p = jax.eval_shape(lambda k: model.init(k, shape), jax.random.PRNGKey(0))
    n_par = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(p))
    n = shape[0]
    # parameters (x3: init in default float, cast, cotangents) + per-example Jacobians.
    return int(1.3 * itemsize * n_par * (3 + n * max(ntk_channels, 0)) + 8 * 4096), n_par


# --------------------------------------------------------------------------- sampling

def _seed_fn(model, ntk_channels: int, dtype):
    def one(key, x):
        n = x.shape[0]
        _, params = model.init(key, x.shape)
        params = jax.tree_util.tree_map(lambda a: a.astype(dtype), params)

        def f(p):
            return model.apply(p, x)
        out = f(params)
        if out.ndim != 2:
            raise InfntkError(f"convergence: the model's output must be (N, channels), got "
                              f"{out.shape}; end it with Flatten/GlobalAvgPool and a Dense readout.")
        nngp = jnp.einsum("nc,mc->nm", out, out, precision="highest") / out.shape[1]
        if ntk_channels <= 0:
            return nngp, jnp.zeros_like(nngp)
        c = min(ntk_channels, out.shape[1])
        jac = jax.jacrev(lambda p: f(p)[:, :c])(params)
        theta = jnp.zeros((n, n), out.dtype)
        for leaf in jax.tree_util.tree_leaves(jac):
            j = leaf.reshape(n, c, -1)
            theta = theta + jnp.einsum("ncp,mcp->nm", j, j, precision="highest")
        return nngp, theta / c
    return one


@functools.lru_cache(maxsize=64)
def _cached_sampler(model, ntk_channels: int, dtype_name: str):
    return jax.jit(jax.vmap(_seed_fn(model, ntk_channels, jnp.dtype(dtype_name)), in_axes=(0, None)))


def _sampler(model, ntk_channels: int, dtype):
    """``(keys, x) -> (nngp, ntk)`` per seed, compiled once per model, dtype and shapes (so a
    resumed study, or a second study of the same widths, does not compile again)."""
    try:
        return _cached_sampler(model, int(ntk_channels), jnp.dtype(dtype).name)
    except TypeError:  # an unhashable model: compiled for this call only
        return jax.jit(jax.vmap(_seed_fn(model, ntk_channels, dtype), in_axes=(0, None)))


def sample_kernels(model, x, keys, ntk_channels: int = 1, dtype=None,
                   memory_budget: Optional[int] = None, on_chunk: Optional[Callable] = None):
    """Per-seed empirical NNGP and NTK, numpy arrays ``(S, N, N)``, plus timing info.

    Seeds are vmapped in chunks of ``chunk`` seeds, ``chunk`` chosen so that the estimated
    working memory stays under ``memory_budget`` bytes; the last chunk is padded (so one
    compilation serves all chunks) and the padding dropped.
    """
    dtype = jnp.dtype(dtype or jnp.zeros(()).dtype)
    x = jnp.asarray(x, dtype)
    budget = memory_budget or default_memory_budget()
    per_seed, n_par = _per_seed_bytes(model, x.shape, ntk_channels, dtype.itemsize)
    s = len(keys)
    chunk = int(max(1, min(s, budget // max(per_seed, 1))))
    fn = _sampler(model, ntk_channels, dtype)
    nngp, ntk, t_first = [], [], None
    t0 = time.perf_counter()
    with jax.default_matmul_precision("highest"):
        for i in range(0, s, chunk):
            k = keys[i:i + chunk]
            m = k.shape[0]
            if m < chunk:
                k = jnp.concatenate([k, jnp.repeat(k[-1:], chunk - m, 0)], 0)
            a, b = fn(k, x)
            a, b = np.asarray(a, np.float64)[:m], np.asarray(b, np.float64)[:m]
            if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
                raise InfntkError("convergence: non-finite empirical kernel (overflow? try "
                                  "float64 or smaller W_std).")
            nngp.append(a)
            ntk.append(b)
            if t_first is None:
                t_first = time.perf_counter() - t0
            if on_chunk is not None:
                on_chunk(m)
    total = time.perf_counter() - t0
    info = {"chunk": chunk, "n_params": n_par, "bytes_per_seed": per_seed,
            "memory_budget": int(budget), "seconds": total, "seconds_first_chunk": t_first,
            "dtype": str(dtype)}
    return np.concatenate(nngp), np.concatenate(ntk), info


# --------------------------------------------------------------------------- statistics

def kernel_metrics(samples, exact) -> dict:
    """Relative Frobenius errors of ``samples`` ``(..., S, N, N)`` against ``exact`` ``(N, N)``.

    Leading axes (bootstrap replicates) broadcast. Keys: ``error`` (RMS over seeds of the
    single-draw error), ``bias`` (debiased, see the module docstring), ``bias_raw``, ``fluct``,
    ``noise`` (``fluct / sqrt(S)``: the size of the mean's own noise).
    """
    samples = np.asarray(samples, np.float64)
    exact = np.asarray(exact, np.float64)
    s = samples.shape[-3]
    norm2 = np.sum(exact ** 2)
    mean = samples.mean(-3)
    err2 = np.sum((samples - exact) ** 2, (-2, -1)) / norm2
    dev2 = np.sum((samples - mean[..., None, :, :]) ** 2, (-2, -1)).sum(-1) / (s - 1) / norm2
    bias2 = np.sum((mean - exact) ** 2, (-2, -1)) / norm2
    return {"error": np.sqrt(err2.mean(-1)), "bias": np.sqrt(np.maximum(bias2 - dev2 / s, 0.0)),
            "bias_raw": np.sqrt(bias2), "fluct": np.sqrt(dev2), "noise": np.sqrt(dev2 / s)}


def fit_slope(x, y) -> tuple[float, float]:
    """Least-squares ``(slope, intercept)`` of ``log y`` on ``log x`` (last axis; broadcasts)."""
    lx, ly = np.log(np.asarray(x, np.float64)), np.log(np.asarray(y, np.float64))
    cx = lx - lx.mean()
    slope = np.sum(cx * (ly - ly.mean(-1, keepdims=True)), -1) / np.sum(cx ** 2)
    return slope, ly.mean(-1) - slope * lx.mean()


def bootstrap_slopes(widths, samples: Sequence[np.ndarray], exact, n_boot: int = 1000,
                     seed: int = 0, level: float = 0.95) -> dict:
    """Fitted slopes of every metric against width with bootstrap intervals.

    Each replicate resamples the seeds (with replacement) at every width independently and
    refits. The bias is fitted only on the widths where it is resolved (debiased bias above
    twice the mean's noise); ``widths_used`` says which. Returns ``{metric: {slope, lo, hi,
    intercept, se, widths_used}}``.
    """
    widths = np.asarray(widths, np.float64)
    rng = np.random.default_rng(seed)
    point = [kernel_metrics(k, exact) for k in samples]
    boots = []
    for k in samples:
        s = k.shape[0]
        idx = rng.integers(0, s, size=(n_boot, s))
        boots.append(kernel_metrics(k[idx], exact))
    a = (1 - level) / 2
    out = {}
    for m in METRICS:
        use = np.ones(len(widths), bool)
        if m == "bias":
            use = np.array([p["bias"] > 2 * p["noise"] for p in point])
        if use.sum() < 2:
            out[m] = {"slope": None, "lo": None, "hi": None, "intercept": None, "se": None,
                      "widths_used": widths[use].astype(int).tolist()}
            continue
        y = np.array([p[m] for p in point])[use]
        slope, icpt = fit_slope(widths[use], y)
        yb = np.stack([b[m] for b in boots], -1)[:, use]
        ok = np.all(yb > 0, -1)
        sb, _ = fit_slope(widths[use], np.where(yb > 0, yb, 1.0))
        sb = sb[ok]
        lo, hi = (np.quantile(sb, [a, 1 - a]) if sb.size else (np.nan, np.nan))
        out[m] = {"slope": float(slope), "lo": float(lo), "hi": float(hi),
                  "intercept": float(icpt), "se": float(np.std(sb)) if sb.size else None,
                  "widths_used": widths[use].astype(int).tolist(),
                  "boot_ok": float(ok.mean())}
    return out


# --------------------------------------------------------------------------- the study

def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _x_digest(x) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(x, np.float64)).tobytes()).hexdigest()[:16]


@dataclasses.dataclass
class StudyResult:
    """Everything a convergence study measured (see :func:`run_study`)."""

    name: str
    model: str
    widths: list
    seeds: int
    exact: dict                     # kernel -> (N, N)
    samples: dict                   # kernel -> {width: (S, N, N)}
    metrics: dict                   # kernel -> metric -> [value per width]
    fits: dict                      # kernel -> metric -> fit (see bootstrap_slopes)
    theory: dict                    # metric -> slope (or None)
    timings: dict                   # width -> info from sample_kernels
    device: dict
    config: dict
    resumed: list = dataclasses.field(default_factory=list)

    @property
    def summary(self) -> dict:
        s = {}
        for k in self.fits:
            for m, f in self.fits[k].items():
                if f["slope"] is not None:
                    s[f"{k}.{m}.slope"] = f["slope"]
                    s[f"{k}.{m}.ci"] = [round(f["lo"], 4), round(f["hi"], 4)]
            s[f"{k}.theory.fluct"] = self.theory["fluct"]
        s["seconds"] = sum(t["seconds"] for t in self.timings.values())
        s["device"] = self.device["kind"]
        return s

    def to_dict(self, samples: bool = False) -> dict:
        d = {"name": self.name, "model": self.model, "widths": list(self.widths),
             "seeds": self.seeds, "exact": {k: np.asarray(v).tolist() for k, v in self.exact.items()},
             "metrics": _plain(self.metrics), "fits": _plain(self.fits), "theory": self.theory,
             "timings": {str(w): t for w, t in self.timings.items()}, "device": self.device,
             "config": self.config, "resumed": list(self.resumed), "summary": _plain(self.summary)}
        if samples:
            d["samples"] = {k: {str(w): np.asarray(a).tolist() for w, a in v.items()}
                            for k, v in self.samples.items()}
        return d


def _plain(obj):
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _progress(enabled: bool):
    if not enabled:
        return None
    try:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn)
    except ImportError:  # pragma: no cover
        return None
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), transient=False)


def run_study(model_fn, widths: Sequence[int], seeds: int, x, *, name: str = "study",
              out: Optional[str] = None, ntk: bool = True, ntk_channels: int = 1,
              readout_width: bool = True, dtype=None, memory_budget: Optional[int] = None,
              seed: int = 0, n_boot: int = 1000, bias_zero: Optional[bool] = None,
              resume: bool = True, progress: bool = True,
              on_width: Optional[Callable[[int, dict], None]] = None) -> StudyResult:
    """Monte Carlo convergence study of a model family (see the module docstring).

    Args:
      model_fn: ``width -> model``, an architecture string (``{w}`` placeholder or hidden
        widths replaced) or an infntk model (see :func:`resolve_model_fn`).
      widths: hidden widths (powers of two recommended); seeds: networks per width.
      x: inputs ``(N, ...)``; the exact kernels are computed once, in float64 when enabled.
      out: directory; each width's samples go to ``width_XXXXXX.json`` when done, and a rerun
        skips widths already there (their configuration hash must match, else InfntkError).
      ntk_channels: output channels the NTK is averaged over (0: NNGP only).
      dtype: float dtype of the finite networks (default: JAX's default float).
      bias_zero: the bias is exactly zero (one hidden layer): theory has no bias slope.
        ``None``: infer from the model (a single nonlinearity on the serial chain).
      on_width: called as ``on_width(width, record)`` after each width is saved.

    Returns:
      a :class:`StudyResult`.
    """
    widths = [int(w) for w in widths]
    if not widths or any(w < 1 for w in widths) or len(set(widths)) != len(widths):
        raise InfntkError(f"convergence: widths must be distinct positive integers, got {widths}.")
    if len(widths) < 2:
        raise InfntkError("convergence: need at least two widths to fit a slope.")
    if int(seeds) < 3:
        raise InfntkError(f"convergence: need at least 3 seeds, got {seeds}.")
    seeds = int(seeds)
    build, desc = resolve_model_fn(model_fn, readout_width)
    x = np.asarray(x)
    if x.ndim < 2 or x.shape[0] < 2:
        raise InfntkError(f"convergence: x must be (N>=2, features...), got shape {x.shape}.")
    dtype = jnp.dtype(dtype or jnp.zeros(()).dtype)
    models = {w: build(w) for w in sorted(widths)}
    exact_dtype = jnp.zeros((), jnp.float64).dtype  # float64 when x64 is on
    ex = models[widths[0]].kernel(jnp.asarray(x, exact_dtype), None, get=("nngp", "ntk"))
    exact = {"nngp": np.asarray(ex.nngp, np.float64), "ntk": np.asarray(ex.ntk, np.float64)}
    if bias_zero is None:
        bias_zero = _one_hidden_layer(models[widths[0]])
    config = {"format": _FORMAT, "name": name, "model": desc, "seeds": seeds, "seed": seed,
              "x": _x_digest(x), "x_shape": list(x.shape), "ntk_channels": ntk_channels if ntk else 0,
              "dtype": str(dtype), "readout_width": readout_width,
              "x64": bool(jax.config.read("jax_enable_x64"))}
    chash = _digest(config)
    dev = device_info()
    budget = memory_budget or default_memory_budget()
    if out:
        os.makedirs(out, exist_ok=True)
        _write(os.path.join(out, "study.json"),
               {"config": config, "hash": chash, "widths": widths, "device": dev,
                "exact": {k: v.tolist() for k, v in exact.items()}})
    samples = {k: {} for k in KERNELS}
    timings, resumed = {}, []
    bar = _progress(progress)
    if bar is not None:
        bar.start()
    try:
        for w in sorted(widths):
            model = models[w]
            whash = _digest({"study": chash, "width": w, "model": repr(model)})
            path = os.path.join(out, _WIDTH_FILE.format(w)) if out else None
            rec = _load_width(path, whash, resume) if path else None
            if rec is not None:
                resumed.append(w)
                if bar is not None:
                    bar.add_task(f"{name} w={w} (resumed)", total=seeds, completed=seeds)
            else:
                task = bar.add_task(f"{name} w={w}", total=seeds) if bar is not None else None
                keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), w), seeds)
                a, b, info = sample_kernels(
                    model, x, keys, ntk_channels if ntk else 0, dtype, budget,
                    on_chunk=(lambda m, t=task: bar.advance(t, m)) if bar is not None else None)
                info["device"] = dev["kind"]
                rec = {"hash": whash, "config_hash": chash, "width": w, "model": repr(model),
                       "info": info, "nngp": a.tolist(), "ntk": b.tolist(),
                       "metrics": {k: _plain(kernel_metrics(v, exact[k]))
                                   for k, v in (("nngp", a), ("ntk", b))}}
                if path:
                    _write(path, rec)
            samples["nngp"][w] = np.asarray(rec["nngp"], np.float64)
            samples["ntk"][w] = np.asarray(rec["ntk"], np.float64)
            timings[w] = rec["info"]
            if on_width is not None:
                on_width(w, rec)
    finally:
        if bar is not None:
            bar.stop()
    ws = sorted(widths)
    kernels = KERNELS if ntk else ("nngp",)
    metrics, fits = {}, {}
    for k in kernels:
        per = [kernel_metrics(samples[k][w], exact[k]) for w in ws]
        metrics[k] = {m: [float(p[m]) for p in per] for m in per[0]}
        fits[k] = bootstrap_slopes(ws, [samples[k][w] for w in ws], exact[k], n_boot, seed)
    theory = dict(THEORY)
    if bias_zero:
        theory["bias"] = None
    res = StudyResult(name=name, model=desc, widths=ws, seeds=seeds, exact=exact,
                      samples=samples, metrics=metrics, fits=fits, theory=theory,
                      timings=timings, device=dev, config=dict(config, hash=chash),
                      resumed=resumed)
    if out:
        _write(os.path.join(out, "result.json"), res.to_dict())
    return res


def _one_hidden_layer(model) -> bool:
    """True for ``Dense >> nonlinearity >> Dense``-like chains (exactly Gaussian pre-activations)."""
    import infntk as nk

    layers = model.layers if isinstance(model, nk.Serial) else (model,)
    nonlin = [l for l in layers if isinstance(l, nk.Elementwise)]
    simple = all(isinstance(l, (nk.Dense, nk.Elementwise)) for l in layers)
    return simple and len(nonlin) == 1


def _write(path: str, payload: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(_plain(payload), fh)
    os.replace(tmp, path)  # atomic: an interrupted write never leaves half a file


def _load_width(path: str, whash: str, resume: bool):
    if not os.path.exists(path):
        return None
    if not resume:
        return None
    with open(path) as fh:
        rec = json.load(fh)
    if rec.get("hash") != whash:
        raise InfntkError(f"convergence: {path} was made with a different configuration "
                          f"(hash {rec.get('hash')} != {whash}); use another output directory "
                          "or pass resume=False to overwrite.")
    return rec


# --------------------------------------------------------------------------- CLI entry

def run(arch: Optional[str] = None, model=None, x=None, widths: Sequence[int] = (64, 256, 1024),
        seeds: int = 8, out: Optional[str] = None, ntk_channels: int = 1, n_boot: int = 1000,
        seed: int = 0, progress: bool = False, **kw) -> dict:
    """Entry point of ``infntk converge``: a study of ``arch`` (or ``model``) on ``x``.

    Returns a dict with ``model``, ``summary`` (fitted slopes with 95% intervals) and the full
    result; with ``out``, writes the per-width JSON, ``result.json``, ``report.md`` and plots.
    """
    if x is None:
        raise InfntkError("convergence: no inputs x given.")
    spec = arch if arch is not None else model
    if spec is None:
        raise InfntkError("convergence: give an architecture string or a model.")
    res = run_study(spec, widths, seeds, x, name="converge", out=out, ntk_channels=ntk_channels,
                    n_boot=n_boot, seed=seed, progress=progress, **kw)
    d = res.to_dict()
    if out:
        with open(os.path.join(out, "report.md"), "w") as fh:
            fh.write(report.study_markdown(d))
        try:
            plots.plot_study(d, out)
        except ImportError:  # matplotlib is optional (the `cli` extra): no plot without it
            pass
    return d
