r"""Linear algebra of the training kernel: Cholesky, eigendecomposition, conjugate gradients.

All factorizations run in float64 (numpy/scipy LAPACK), whatever JAX's precision setting, and
check what they are given: a kernel that is not symmetric positive semi-definite, or whose
condition number :math:`\kappa = \lambda_{max} / \lambda_{min}` is above ``max_cond`` (default
``1e13``, where a solve keeps fewer than ~3 significant digits) raises
:class:`~infntk.errors.InfntkError` naming the number and suggesting ``diag_reg``, instead of
returning NaNs or noise.

Conjugate gradients (Jacobi preconditioned, several right-hand sides at once) need only products
:math:`K v`, so a training kernel can be a :class:`KernelOperator`: a product callable, e.g. over a
Gram matrix stored on disk and read in row blocks (:meth:`KernelOperator.from_array`).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Optional, Tuple

import numpy as np
import scipy.linalg

from ..errors import InfntkError

DEFAULT_MAX_COND = 1e13
"""Largest condition number of the (regularized) training kernel accepted for a solve."""

_SOLVERS = ("auto", "eigh", "cholesky", "cg")


@dataclasses.dataclass(frozen=True)
class KernelOperator:
    r"""A kernel matrix given by its products, :math:`V \mapsto K V`.

    Attributes:
        matvec: callable taking a float64 array of shape ``(shape[1], m)`` and returning
            ``K @ V`` of shape ``(shape[0], m)``.
        shape: ``(n1, n2)``.
        diagonal: the diagonal of a square ``K`` (length ``n``), if known. Used for the Jacobi
            preconditioner of CG and for ``diag_reg`` relative to the mean diagonal
            (``diag_reg_absolute_scale=False``); without it only absolute regularization works.

    Example:
        >>> import numpy as np
        >>> from infntk.predict import KernelOperator
        >>> a = np.array([[2., 1.], [1., 2.]])
        >>> op = KernelOperator.from_array(a, block_rows=1)
        >>> op.matvec(np.ones((2, 1))).ravel().tolist(), op.diagonal.tolist()
        ([3.0, 3.0], [2.0, 2.0])
    """

    matvec: Callable[[np.ndarray], np.ndarray]
    shape: Tuple[int, int]
    diagonal: Optional[np.ndarray] = None

    @classmethod
    def from_array(cls, a: Any, block_rows: Optional[int] = None,
                   memory_budget: Optional[int] = None) -> "KernelOperator":
        """Products with any 2-D array-like that supports row slicing ``a[i:j]``.

        ``a`` can be an ``np.memmap`` / ``np.load(path, mmap_mode='r')``, a zarr or h5py array:
        only ``block_rows`` rows are read at a time (default: as many as fit in
        ``memory_budget`` bytes, else 1024), so the matrix is never loaded whole.
        """
        shape = tuple(int(s) for s in a.shape)
        if len(shape) != 2:
            raise InfntkError(f"KernelOperator.from_array: expected a 2-D array, got shape {shape}.")
        n1, n2 = shape
        if block_rows is None:
            block_rows = 1024 if memory_budget is None else max(1, int(memory_budget) // (8 * max(n2, 1) * 2))
        b = int(block_rows)

        def matvec(v: np.ndarray) -> np.ndarray:
            v = np.asarray(v, dtype=np.float64)
            out = np.empty((n1,) + v.shape[1:], dtype=np.float64)
            for i in range(0, n1, b):
                out[i:i + b] = np.asarray(a[i:i + b], dtype=np.float64) @ v
            return out

        diag = None
        if n1 == n2:
            diag = np.empty(n1)
            for i in range(0, n1, b):
                blk = np.asarray(a[i:i + b], dtype=np.float64)
                diag[i:i + b] = blk[np.arange(blk.shape[0]), i + np.arange(blk.shape[0])]
        return cls(matvec=matvec, shape=(n1, n2), diagonal=diag)


def as_operator(k: Any, n: Optional[int]) -> Optional[KernelOperator]:
    """``k`` as a :class:`KernelOperator`, or ``None`` for a dense array.

    Operators are: a :class:`KernelOperator`; an object with ``shape`` and ``matmat`` or ``matvec``
    (``infntk.tiling.StoredGram``, ``scipy.sparse.linalg.LinearOperator``), whose ``diagonal``
    (method or array) is used when present; a plain callable ``V -> K @ V`` of shape
    ``(n, n)`` (``n`` given; ``None`` means a plain callable is not accepted here).
    """
    if isinstance(k, KernelOperator):
        return k
    if isinstance(k, np.ndarray) or hasattr(k, "__jax_array__") or type(k).__module__.startswith("jax"):
        return None
    mv = getattr(k, "matmat", None) or getattr(k, "matvec", None)
    if mv is not None and hasattr(k, "shape"):
        diag = getattr(k, "diagonal", None)
        if callable(diag):
            try:
                diag = diag()
            except Exception:  # e.g. scipy LinearOperator has none
                diag = None
        shape = tuple(int(s) for s in k.shape)
        if diag is not None:
            diag = np.asarray(diag, dtype=np.float64).reshape(-1)
        return KernelOperator(matvec=lambda v, mv=mv: np.asarray(mv(v), dtype=np.float64), shape=shape,
                              diagonal=diag)
    if callable(k) and not hasattr(k, "shape"):
        if n is None:
            raise InfntkError("a test-train kernel given as a plain callable needs a shape: wrap it in "
                              "KernelOperator(matvec, shape=(n_test, n_train)).")
        return KernelOperator(matvec=k, shape=(n, n))
    return None


def matmul(k: Any, v: np.ndarray) -> np.ndarray:
    """``k @ v`` for a dense array or a :class:`KernelOperator`."""
    if isinstance(k, KernelOperator):
        return np.asarray(k.matvec(v), dtype=np.float64)
    return k @ v


def regularizer(diag_reg: float, absolute: bool, trace_mean: Optional[float], where: str) -> float:
    r"""Absolute ridge :math:`\epsilon` added to the diagonal (``diag_reg * mean(diag K)`` if relative)."""
    diag_reg = float(diag_reg)
    if not math.isfinite(diag_reg) or diag_reg < 0:
        raise InfntkError(f"{where}: `diag_reg` must be a finite number >= 0, got {diag_reg}.")
    if absolute or diag_reg == 0.0:
        return diag_reg
    if trace_mean is None:
        raise InfntkError(
            f"{where}: `diag_reg` relative to the mean diagonal needs the kernel's diagonal; give "
            "a KernelOperator with `diagonal`, or pass `diag_reg_absolute_scale=True`.")
    return diag_reg * trace_mean


def resolve_solver(solver: str, n: int, need: str, is_operator: bool,
                   memory_budget: Optional[float], where: str) -> str:
    """Which route a request takes.

    ``need`` is ``'solve'`` (t = inf: a linear solve) or ``'eigh'`` (finite t: functions of the
    kernel). ``'auto'`` picks Cholesky for solves and eigh for finite times when their working
    memory (about ``2 n^2`` resp. ``3 n^2`` float64 numbers) fits ``memory_budget`` bytes
    (``None``: no limit), and CG for solves otherwise or when the kernel is only an operator.
    """
    if solver not in _SOLVERS:
        raise InfntkError(f"{where}: `solver` must be one of {_SOLVERS}, got {solver!r}.")
    direct_bytes = {"solve": 2, "eigh": 3}[need] * 8.0 * n * n
    fits = memory_budget is None or direct_bytes <= float(memory_budget)
    if need == "eigh":
        if is_operator:
            raise InfntkError(
                f"{where}: predictions at a finite time `t` need the eigendecomposition of the "
                "training kernel, which a matrix-free KernelOperator cannot give; pass the kernel as "
                "an array, or ask for t=None (infinite time, solved by conjugate gradients).")
        if solver == "cg":
            raise InfntkError(f"{where}: solver='cg' only computes t=None (infinite-time) predictions.")
        if solver == "auto" and not fits:
            raise InfntkError(
                f"{where}: finite-time predictions need an eigendecomposition using ~{direct_bytes:.3g} "
                f"bytes, above memory_budget={memory_budget:.3g}; raise the budget or use t=None.")
        return "eigh"
    if is_operator:
        if solver in ("eigh", "cholesky"):
            raise InfntkError(f"{where}: solver={solver!r} needs the kernel as an array, got an operator.")
        return "cg"
    if solver == "auto":
        return "cholesky" if fits else "cg"
    return solver


def _eig_report(a: np.ndarray) -> Tuple[float, float]:
    ev = scipy.linalg.eigvalsh(a, check_finite=False)
    return float(ev[0]), float(ev[-1])


def _not_psd_error(where: str, what: str, lmin: float, lmax: float, reg: float) -> InfntkError:
    hint = ("A valid NNGP/NTK is PSD, so check how it was computed (same inputs on both sides, "
            "finite values, a train-train kernel)")
    if abs(lmin) < 1e-6 * max(lmax, 1e-300):
        hint += (f"; for round-off in a nearly singular kernel pass `diag_reg`, e.g. diag_reg="
                 f"{_suggest(lmin, lmax):.0e} (relative to the mean diagonal)")
    return InfntkError(
        f"{where}: the training kernel `{what}` (plus diag_reg {reg:.3g}) is not positive "
        f"semi-definite: most negative eigenvalue {lmin:.3g} (largest {lmax:.3g}). {hint}.")


def _ill_cond_error(where: str, what: str, lmin: float, lmax: float, max_cond: float, reg: float) -> InfntkError:
    cond = lmax / lmin if lmin > 0 else math.inf
    return InfntkError(
        f"{where}: the training kernel `{what}` (plus diag_reg {reg:.3g}) is singular or "
        f"ill-conditioned: condition number {cond:.3g} > max_cond={max_cond:.3g} (eigenvalues "
        f"from {lmin:.3g} to {lmax:.3g}), so the infinite-time solve would be dominated by "
        "round-off. Pass a small `diag_reg` (e.g. diag_reg=1e-6, relative to the mean diagonal), "
        "remove duplicate training inputs, or use a finite time `t`.")


def _suggest(lmin: float, lmax: float) -> float:
    return max(1e-10, 10 ** math.ceil(math.log10(max(abs(lmin), 1e-300) / max(lmax, 1e-300) * 10)))


def _check_symmetric(a: np.ndarray, where: str, what: str) -> None:
    scale = float(np.max(np.abs(a))) if a.size else 0.0
    asym = float(np.max(np.abs(a - a.T))) if a.size else 0.0
    if asym > 1e-8 * max(scale, 1e-300):
        raise InfntkError(
            f"{where}: the training kernel `{what}` is not symmetric (max |K - K^T| = {asym:.3g}, "
            f"max |K| = {scale:.3g}); pass the train-train kernel, kernel(x_train, x_train).")


class Cholesky:
    """Cholesky factor of ``K + reg I``, with PSD and condition checks. ``solve(B) = (K + reg I)^{-1} B``."""

    def __init__(self, k: np.ndarray, reg: float, where: str, what: str, max_cond: float):
        _check_symmetric(k, where, what)
        a = k + reg * np.eye(k.shape[0])
        try:
            self.c = scipy.linalg.cho_factor(a, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            lmin, lmax = _eig_report(a)
            if lmin < -_roundoff(a.shape[0], lmax):
                raise _not_psd_error(where, what, lmin, lmax, reg) from None
            raise _ill_cond_error(where, what, lmin, lmax, max_cond, reg) from None
        anorm = float(np.max(np.sum(np.abs(a), axis=0))) if a.size else 0.0
        rcond, info = scipy.linalg.lapack.dpocon(self.c[0], anorm, uplo="L")
        self.cond = math.inf if rcond <= 0 else 1.0 / float(rcond)
        if self.cond > max_cond:
            lmin, lmax = _eig_report(a)
            if lmin < -_roundoff(a.shape[0], lmax):
                raise _not_psd_error(where, what, lmin, lmax, reg)
            raise _ill_cond_error(where, what, lmin, lmax, max_cond, reg)

    def solve(self, b: np.ndarray) -> np.ndarray:
        return scipy.linalg.cho_solve(self.c, b, check_finite=False)


def _roundoff(n: int, lmax: float) -> float:
    return 100.0 * max(n, 1) * np.finfo(np.float64).eps * max(abs(lmax), 1e-300)


class Eigh:
    r"""Eigendecomposition :math:`K + \epsilon I = V \operatorname{diag}(\lambda) V^\top`.

    Eigenvalues within round-off below zero are clipped to 0 (as neural-tangents does); a clearly
    negative one raises. ``solve`` checks the condition number like :class:`Cholesky`.
    """

    def __init__(self, k: np.ndarray, reg: float, where: str, what: str, max_cond: float):
        _check_symmetric(k, where, what)
        a = k + reg * np.eye(k.shape[0])
        lam, self.v = scipy.linalg.eigh(a, check_finite=False)
        lmax = float(lam[-1]) if lam.size else 0.0
        lmin = float(lam[0]) if lam.size else 0.0
        self.raw_min = lmin
        if lmin < -_roundoff(lam.size, lmax):
            raise _not_psd_error(where, what, lmin, lmax, reg)
        self.lam = np.maximum(lam, 0.0)
        self.where, self.what, self.max_cond, self.reg = where, what, max_cond, reg

    def apply(self, g: np.ndarray, b: np.ndarray) -> np.ndarray:
        """:math:`V \\operatorname{diag}(g_t) V^\\top B` for each row ``g_t`` of ``g`` (T, n) -> (T, n, c)."""
        vb = self.v.T @ b
        return np.einsum("ij,tj,jc->tic", self.v, g, vb, optimize=True)

    def solve(self, b: np.ndarray) -> np.ndarray:
        lmax = float(self.lam[-1]) if self.lam.size else 0.0
        lmin = self.raw_min
        cond = lmax / lmin if lmin > 0 else math.inf
        if cond > self.max_cond:
            raise _ill_cond_error(self.where, self.what, lmin, lmax, self.max_cond, self.reg)
        return self.v @ ((self.v.T @ b) / self.lam[:, None])


class CG:
    r"""Jacobi-preconditioned conjugate gradients for :math:`(K + \epsilon I) X = B`, all columns at once.

    Stops when every column's residual :math:`\|B - (K+\epsilon I)X\|_2 \le` ``tol`` :math:`\|B\|_2`.
    Failure to converge in ``maxiter`` (default ``10 n``) iterations, or a direction of
    non-positive curvature (a kernel that is not PSD), raises :class:`InfntkError`.
    """

    def __init__(self, op: KernelOperator, reg: float, where: str, what: str,
                 tol: float = 1e-10, maxiter: Optional[int] = None):
        self.op, self.reg, self.where, self.what = op, reg, where, what
        self.tol = float(tol)
        n = op.shape[0]
        self.maxiter = int(maxiter) if maxiter is not None else 10 * max(n, 10)
        d = None if op.diagonal is None else np.asarray(op.diagonal, dtype=np.float64) + reg
        if d is not None and np.all(d > 0):
            self.inv_diag = 1.0 / d
        else:
            self.inv_diag = None
        self.iterations = 0

    def _a(self, x: np.ndarray) -> np.ndarray:
        y = np.asarray(self.op.matvec(x), dtype=np.float64)
        if y.shape != x.shape:
            raise InfntkError(f"{self.where}: the kernel operator returned shape {y.shape} for input {x.shape}.")
        if not np.all(np.isfinite(y)):
            raise InfntkError(f"{self.where}: the kernel operator `{self.what}` returned NaN/inf values.")
        return y + self.reg * x

    def solve(self, b: np.ndarray) -> np.ndarray:
        b = np.asarray(b, dtype=np.float64)
        squeeze = b.ndim == 1
        b = b.reshape(b.shape[0], -1)
        bnorm = np.linalg.norm(b, axis=0)
        x = np.zeros_like(b)
        r = b.copy()
        z = r * self.inv_diag[:, None] if self.inv_diag is not None else r.copy()
        p = z.copy()
        rz = np.sum(r * z, axis=0)
        target = self.tol * bnorm
        it = 0
        rnorm = np.linalg.norm(r, axis=0)
        while np.any(rnorm > target) and it < self.maxiter:
            active = rnorm > target
            ap = self._a(p)
            pap = np.sum(p * ap, axis=0)
            if np.any(active & (pap <= 0)):
                raise InfntkError(
                    f"{self.where}: conjugate gradients met non-positive curvature p^T K p = "
                    f"{float(np.min(pap[active])):.3g}: the training kernel `{self.what}` (plus diag_reg "
                    f"{self.reg:.3g}) is not positive definite. Pass a positive `diag_reg`.")
            alpha = np.where(active, rz / np.where(pap > 0, pap, 1.0), 0.0)
            x += alpha * p
            r -= alpha * ap
            z = r * self.inv_diag[:, None] if self.inv_diag is not None else r
            rz_new = np.sum(r * z, axis=0)
            beta = np.where(active, rz_new / np.where(rz != 0, rz, 1.0), 0.0)
            p = z + beta * p
            rz = rz_new
            rnorm = np.linalg.norm(r, axis=0)
            it += 1
        self.iterations = it
        if np.any(rnorm > target):
            rel = float(np.max(rnorm / np.where(bnorm > 0, bnorm, 1.0)))
            raise InfntkError(
                f"{self.where}: conjugate gradients did not converge in {it} iterations (relative "
                f"residual {rel:.3g} > cg_tol={self.tol:.3g}); the training kernel `{self.what}` is "
                "probably ill-conditioned. Pass a larger `diag_reg` (e.g. 1e-6 relative to the mean "
                "diagonal), or raise `cg_maxiter`.")
        return x[:, 0] if squeeze else x


def phi1(z: np.ndarray) -> np.ndarray:
    r""":math:`(1 - e^{-z}) / z`, continued by 1 at :math:`z = 0` (stable for tiny ``z``)."""
    z = np.asarray(z, dtype=np.float64)
    small = np.abs(z) < 1e-8
    zs = np.where(small, 1.0, z)
    return np.where(small, 1.0 - z / 2.0, -np.expm1(-zs) / zs)


class TrainKernel:
    """One training kernel (dense or an operator) with its ridge and lazily built, cached solvers."""

    def __init__(self, k: Any, layout: Any, diag_reg: float, absolute: bool, where: str, what: str,
                 solver: str = "auto", memory_budget: Optional[float] = None, cg_tol: float = 1e-10,
                 cg_maxiter: Optional[int] = None, max_cond: float = DEFAULT_MAX_COND):
        self.where, self.what = where, what
        self.solver, self.memory_budget = solver, memory_budget
        self.cg_tol, self.cg_maxiter, self.max_cond = cg_tol, cg_maxiter, max_cond
        if solver not in _SOLVERS:
            raise InfntkError(f"{where}: `solver` must be one of {_SOLVERS}, got {solver!r}.")
        op = as_operator(k, layout.n)
        if op is not None:
            if tuple(op.shape) != (layout.n, layout.n):
                raise InfntkError(
                    f"{where}: the kernel operator `{what}` has shape {tuple(op.shape)}, expected "
                    f"{(layout.n, layout.n)} for {layout.n} training examples.")
            self.op, self.dense = op, None
            trace_mean = None if op.diagonal is None else float(np.mean(op.diagonal))
        else:
            self.dense, _ = layout.kernel_2d(k, what, test_side=layout.sample_shape)
            self.op = None
            trace_mean = float(np.trace(self.dense)) / max(layout.n, 1)
        self.n = layout.n
        self.reg = regularizer(diag_reg, absolute, trace_mean, where)
        self._cache: dict = {}

    @property
    def is_operator(self) -> bool:
        return self.op is not None

    def route(self, need: str) -> str:
        return resolve_solver(self.solver, self.n, need, self.is_operator, self.memory_budget, self.where)

    def eigh(self) -> Eigh:
        self.route("eigh")
        if "eigh" not in self._cache:
            self._cache["eigh"] = Eigh(self.dense, self.reg, self.where, self.what, self.max_cond)
        return self._cache["eigh"]

    def solver_for_solve(self):
        """An object with ``solve(B)`` for :math:`(K + \\epsilon I)^{-1} B` along the chosen route."""
        route = self.route("solve")
        if route == "eigh":
            return self.eigh()
        if route not in self._cache:
            if route == "cholesky":
                self._cache[route] = Cholesky(self.dense, self.reg, self.where, self.what, self.max_cond)
            else:
                op = self.op if self.op is not None else KernelOperator(
                    matvec=lambda v, a=self.dense: a @ v, shape=self.dense.shape,
                    diagonal=np.diagonal(self.dense).copy())
                self._cache[route] = CG(op, self.reg, self.where, self.what, self.cg_tol, self.cg_maxiter)
        return self._cache[route]

    def solve(self, b: np.ndarray) -> np.ndarray:
        return self.solver_for_solve().solve(b)


def inv_expm1(s: np.ndarray, lam: np.ndarray) -> np.ndarray:
    r""":math:`(1 - e^{-s\lambda}) / \lambda` for times ``s`` (T,) and eigenvalues ``lam`` (n,) -> (T, n).

    Equal to :math:`s` at :math:`\lambda = 0` and to :math:`1/\lambda` at :math:`s = \infty`.
    """
    fin = np.isfinite(s)
    sf = np.where(fin, s, 0.0)
    out = sf[:, None] * phi1(np.outer(sf, lam))
    inv = np.where(lam > 0, 1.0 / np.where(lam > 0, lam, 1.0), 0.0)
    return np.where(fin[:, None], out, inv[None, :])


def decay(s: np.ndarray, lam: np.ndarray) -> np.ndarray:
    r""":math:`e^{-s\lambda}` for ``s`` (T,), ``lam`` (n,) -> (T, n); 1 where :math:`\lambda = 0` (also at s = inf)."""
    sl = np.outer(s, lam)
    return np.where(lam[None, :] > 0, np.exp(-np.where(np.isnan(sl), 0.0, sl)), 1.0)
