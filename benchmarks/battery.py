"""The benchmark battery: one :class:`Case` per architecture / kernel computation.

Every case is defined once against a ``stax`` module, so the *same* function builds the network in
``infntk.stax`` (newest JAX, ``.venv``) and in ``neural_tangents.stax`` 0.6.5 (JAX 0.4.23,
``.venv-nt``). Inputs are synthetic standard Gaussians drawn with numpy from a fixed seed, so both
workers see bit-identical inputs. This module imports nothing but the standard library: it is read
by the driver (no JAX) and by the workers (either JAX).

Conventions of the issue: ``W_std=1.5``, ``b_std=0.05``, NTK parameterization, 3x3 SAME convolutions
with ONE channel for the analytic kernels (the infinite-width kernel does not depend on the width in
NTK parameterization; the width only sizes the unused finite parameters).
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Tuple

W_STD, B_STD = 1.5, 0.05
DTYPES = ("float32", "float64")
IMPLEMENTATIONS = {1: "jacobian_contraction", 2: "ntk_vector_products", 3: "structured"}


@dataclasses.dataclass(frozen=True)
class Case:
    """One benchmark case.

    kind: ``'kernel'`` (analytic ``kernel_fn(x, None, ('nngp', 'ntk'))``) or ``'empirical'``
    (``empirical_ntk_fn(apply_fn, trace_axes, vmap_axes=0, implementation)(x, None, params)``).
    ``n``/``n_quick``: number of inputs in a full / ``--quick`` run; ``shape``: one input's shape.
    ``group``: the target the case is judged against (see ``TARGETS``); ``nt_skip``: a reason not to
    run neural-tangents (e.g. a materialised Jacobian that does not fit in this machine's memory).
    """

    name: str
    kind: str
    arch: str
    n: int
    n_quick: int
    shape: Tuple[int, ...]
    group: str
    trace_axes: Tuple[int, ...] = (-1,)
    implementation: Optional[int] = None
    nt_skip_bytes: Optional[float] = None  # estimated bytes of NT's working set, per float32 entry

    def size(self, quick: bool) -> int:
        return self.n_quick if quick else self.n


# --------------------------------------------------------------------------- architectures


def _dense(S, width=512):
    return S.Dense(width, W_std=W_STD, b_std=B_STD)


def _conv(S, chan=1):
    return S.Conv(chan, (3, 3), padding="SAME", W_std=W_STD, b_std=B_STD)


def fc_relu(S):
    """10 x [Dense, Relu] + Dense."""
    return S.serial(*[S.serial(_dense(S), S.Relu()) for _ in range(10)], _dense(S, 1))


def fc_erf(S):
    """3 x [Dense, Erf] + Dense."""
    return S.serial(*[S.serial(_dense(S), S.Erf()) for _ in range(3)], _dense(S, 1))


def cnn_flatten(S):
    """4 x [Conv(1, 3x3, SAME), Relu] + Flatten + Dense."""
    return S.serial(*[S.serial(_conv(S), S.Relu()) for _ in range(4)], S.Flatten(), _dense(S, 1))


def cnn_gap(S):
    """4 x [Conv(1, 3x3, SAME), Relu] + GlobalAvgPool + Dense."""
    return S.serial(*[S.serial(_conv(S), S.Relu()) for _ in range(4)], S.GlobalAvgPool(),
                    _dense(S, 1))


def myrtle(S):
    """Myrtle-like: 2 x [Conv, Relu], AvgPool 2, [Conv, Relu], AvgPool 2, GlobalAvgPool, Dense."""
    block = lambda: S.serial(_conv(S), S.Relu())  # noqa: E731
    pool = lambda: S.AvgPool((2, 2), strides=(2, 2))  # noqa: E731
    return S.serial(block(), block(), pool(), block(), pool(), S.GlobalAvgPool(), _dense(S, 1))


def emp_mlp(S):
    """Finite MLP for the empirical NTK: 3 x [Dense(1024), Relu] + Dense(10)."""
    return S.serial(*[S.serial(_dense(S, 1024), S.Relu()) for _ in range(3)], _dense(S, 10))


def emp_cnn(S):
    """Finite CNN for the empirical NTK: 3 x [Conv(64, 3x3, SAME), Relu] + GAP + Dense(10)."""
    return S.serial(*[S.serial(_conv(S, 64), S.Relu()) for _ in range(3)], S.GlobalAvgPool(),
                    _dense(S, 10))


ARCHS: dict[str, Callable] = {f.__name__: f for f in
                              (fc_relu, fc_erf, cnn_flatten, cnn_gap, myrtle, emp_mlp, emp_cnn)}

# Parameters of emp_mlp on 784 inputs: a materialised Jacobian (implementation 1) of N=128 inputs x
# 10 outputs is 128 * 10 * 2.9e6 floats = 15 GB in float32 -- neural-tangents 0.6.5 does not block it.
_MLP_PARAMS = 784 * 1024 + 2 * 1024 * 1024 + 1024 * 10 + 3 * 1024 + 10


def _battery():
    cases = [
        Case("fc-relu", "kernel", "fc_relu", 2000, 64, (784,), "fc_relu"),
        Case("fc-erf", "kernel", "fc_erf", 2000, 64, (784,), "fc_erf"),
        Case("cnn-flatten", "kernel", "cnn_flatten", 128, 8, (8, 8, 1), "cnn_flatten"),
        Case("cnn-gap", "kernel", "cnn_gap", 64, 4, (8, 8, 1), "cnn_gap"),
        Case("myrtle", "kernel", "myrtle", 16, 2, (16, 16, 3), "myrtle"),
    ]
    emp = []
    for tr in ((), (-1,)):
        for impl in IMPLEMENTATIONS:
            tag = "none" if tr == () else "last"
            jac = 10 * _MLP_PARAMS if impl == 1 else None  # floats per example
            emp.append(Case(f"emp-mlp-{tag}-i{impl}", "empirical", "emp_mlp", 128, 4, (784,),
                            "empirical", trace_axes=tr, implementation=impl, nt_skip_bytes=jac))
    for impl in IMPLEMENTATIONS:
        emp.append(Case(f"emp-cnn-last-i{impl}", "empirical", "emp_cnn", 32, 2, (8, 8, 1),
                        "empirical", trace_axes=(-1,), implementation=impl))
    # Run order: the MLP's jacobian_contraction and ntk_vector_products cases take minutes per
    # call (N^2 K^2 |P| and N K passes over 2.9M parameters) and come last, so a run cut short
    # still has every case that decides a target.
    slow = ("emp-mlp-none-i2", "emp-mlp-last-i2", "emp-mlp-none-i1", "emp-mlp-last-i1")
    by_name = {c.name: c for c in emp}
    cases += [c for c in emp if c.name not in slow] + [by_name[n] for n in slow]
    return {c.name: c for c in cases}


CASES: dict[str, Case] = _battery()

# Targets: minimal ratio NT time / infntk time, per group and dtype (None: not a speed target of its
# own -- reported only). 'empirical': infntk's implementation must be at least as fast as NT's
# fastest implementation on the same model/trace axes (ratio >= 1 against NT's best).
TARGETS = {
    ("fc_relu", "float32"): 4.0, ("fc_relu", "float64"): 4.0,
    ("fc_erf", "float32"): None, ("fc_erf", "float64"): None,
    ("cnn_gap", "float32"): 20.0, ("cnn_gap", "float64"): 4.0,
    ("myrtle", "float32"): 20.0, ("myrtle", "float64"): 4.0,
    ("cnn_flatten", "float32"): 3.0, ("cnn_flatten", "float64"): 3.0,
    ("empirical", "float32"): 1.0, ("empirical", "float64"): 1.0,
}

# Largest working set (bytes) we let a worker attempt on this shared machine.
MEMORY_GUARD_BYTES = 6e9


def nt_skip_reason(case: Case, dtype: str, quick: bool) -> Optional[str]:
    """Why neural-tangents is not run on this case, or None."""
    if case.nt_skip_bytes is None:
        return None
    itemsize = 4 if dtype == "float32" else 8
    need = case.size(quick) * case.nt_skip_bytes * itemsize
    if need > MEMORY_GUARD_BYTES:
        return (f"NT materialises the full Jacobian ({need / 1e9:.0f} GB > "
                f"{MEMORY_GUARD_BYTES / 1e9:.0f} GB guard on this {dtype} run)")
    return None
