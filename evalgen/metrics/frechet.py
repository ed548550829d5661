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


def frechet_distance(features_1, features_2, max_imag: float, max_residual: float) -> tuple[float, str]:
    """The Fréchet distance between Gaussians fitted to two feature sets (N, D), in float64:
    |mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2}). scipy's sqrtm is trusted when its imaginary
    part stays below ``max_imag`` and its square is within ``max_residual`` (relative) of S1 S2;
    otherwise a symmetric eigendecomposition gives the trace. Returns (value, method)."""
    f1, f2 = (np.asarray(f, dtype=np.float64) for f in (features_1, features_2))
    mu1, mu2 = f1.mean(axis=0), f2.mean(axis=0)
    s1, s2 = np.atleast_2d(np.cov(f1, rowvar=False)), np.atleast_2d(np.cov(f2, rowvar=False))
    diff = mu1 - mu2
    tr_root, method = _trace_sqrt_product(s1, s2, max_imag, max_residual)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_root), method
