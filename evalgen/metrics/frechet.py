"""The Fréchet distance (FID's mathematics) in float64, apart from features and caches.

`evalgen.metrics.fidelity` computes it on extracted features with the tolerances of its
``DEFAULTS``; tests compare it with closed forms.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

__all__ = ["frechet_distance"]


def _trace_sqrt_product(s1: np.ndarray, s2: np.ndarray, max_imag: float, max_residual: float) -> tuple[float, str]:
    """tr((S1 S2)^{1/2}) in float64: scipy's sqrtm, else a symmetric eigendecomposition."""
    product = s1 @ s2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sqrtm warns on (near-)singular input; we check ourselves
            root = scipy.linalg.sqrtm(product)
        finite = bool(np.all(np.isfinite(root)))
        if finite and np.iscomplexobj(root):
            finite = bool(np.max(np.abs(np.diagonal(root).imag)) <= max_imag)
            root = root.real
        if finite:
            scale = max(np.linalg.norm(product), np.finfo(np.float64).tiny)
            if np.linalg.norm(root @ root - product) / scale <= max_residual:
                return float(np.trace(root)), "sqrtm"
    except (np.linalg.LinAlgError, ValueError):
        pass
    # S1 S2 is similar to S1^{1/2} S2 S1^{1/2}, which is symmetric PSD: same eigenvalues, stable roots.
    # Eigenvalues below rounding level (relative to the largest) are zeros of a singular matrix.
    def nonnegative(w: np.ndarray) -> np.ndarray:
        return np.where(w > len(w) * np.finfo(np.float64).eps * max(np.max(np.abs(w)), 0.0), w, 0.0)

    w1, v1 = np.linalg.eigh(s1)
    half = (v1 * np.sqrt(nonnegative(w1))) @ v1.T
    eig = np.linalg.eigvalsh(half @ s2 @ half)
    return float(np.sum(np.sqrt(nonnegative(eig)))), "eigh"


def _low_rank_trace_sqrt_product(c1: np.ndarray, c2: np.ndarray) -> float:
    """tr((S1 S2)^{1/2}) from centred features C1 (n1, D), C2 (n2, D) with S = C^T C / (n - 1).

    S1 S2 = C1^T (C1 C2^T C2) / k, k = (n1 - 1)(n2 - 1); its nonzero eigenvalues are those of
    C1 C2^T C2 C1^T / k = M M^T / k with M = C1 C2^T (n1, n2), i.e. the squared singular values of
    M / sqrt(k). So the trace of the root is M's nuclear norm over sqrt(k): exact, and an SVD of an
    n1 x n2 matrix instead of a square root of a singular D x D one."""
    k = (len(c1) - 1) * (len(c2) - 1)
    return float(np.linalg.svd(c1 @ c2.T, compute_uv=False).sum() / np.sqrt(k))


def frechet_distance(features_1, features_2, max_imag: float, max_residual: float) -> tuple[float, str]:
    """The Fréchet distance between Gaussians fitted to two feature sets (N, D), in float64:
    |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}). With fewer samples than dimensions in either set
    (S1 S2 singular) the trace of the root is a singular-value sum ("svd", exact); otherwise scipy's
    sqrtm is trusted when its imaginary part stays below ``max_imag`` and its square is within
    ``max_residual`` (relative) of S1 S2, and a symmetric eigendecomposition ("eigh") gives the
    trace when it is not. Returns (value, method)."""
    f1, f2 = (np.asarray(f, dtype=np.float64) for f in (features_1, features_2))
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    s1, s2 = np.atleast_2d(np.cov(f1, rowvar=False)), np.atleast_2d(np.cov(f2, rowvar=False))
    diff = mu1 - mu2
    if min(len(f1), len(f2)) <= f1.shape[1]:
        tr_root, method = _low_rank_trace_sqrt_product(f1 - mu1, f2 - mu2), "svd"
    else:
        tr_root, method = _trace_sqrt_product(s1, s2, max_imag, max_residual)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_root), method
