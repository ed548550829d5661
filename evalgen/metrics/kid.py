"""KID's mathematics (Bińkowski et al. 2018) in float64, apart from features and caches.

The estimator is torch-fidelity 0.4's (``kid_features_to_metric``): ``subsets`` pairs of subsets of
``subset_size`` features, drawn without replacement by ``numpy.random.RandomState(seed).choice``
in its order (generated, then reference, per subset), the unbiased MMD² under the polynomial
kernel k(a, b) = (a·b / D + coef0)^degree on each pair, and their mean and (population) std.
It is computed here because torch-fidelity's runs in the features' float32 and raises every
kernel entry to its power with ``numpy.power``: a third of a quick evaluation's time, and
float32 rounding in sums of a million entries whose difference is the small MMD².
`evalgen.metrics.fidelity` calls it with its ``DEFAULTS``; tests compare it with torch-fidelity
and with a float64 reference.
"""

from __future__ import annotations

import numpy as np

__all__ = ["kernel_inception_distance", "subset_indices"]


def subset_indices(num_1: int, num_2: int, subsets: int, subset_size: int,
                   seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """torch-fidelity's subsets: for each, ``subset_size`` of ``num_1`` then of ``num_2`` indices."""
    rng = np.random.RandomState(seed)
    return [(rng.choice(num_1, subset_size, replace=False), rng.choice(num_2, subset_size, replace=False))
            for _ in range(subsets)]


def _poly_kernel(a: np.ndarray, b: np.ndarray, degree: int, coef0: float) -> np.ndarray:
    k = a @ b.T
    k *= 1.0 / a.shape[1]
    k += coef0
    if degree == 3:  # the default: two multiplications instead of a power per entry
        return k * k * k
    return k ** degree


def _unbiased_mmd2(k_11: np.ndarray, k_12: np.ndarray, k_22: np.ndarray) -> float:
    """Unbiased MMD² from the kernel blocks (m, m): off-diagonal means within, full mean across."""
    m = len(k_11)
    within = (k_11.sum() - np.trace(k_11) + k_22.sum() - np.trace(k_22)) / (m * (m - 1))
    return float(within - 2 * k_12.sum() / (m * m))


def kernel_inception_distance(features_1, features_2, *, subsets: int, subset_size: int, seed: int,
                              degree: int = 3, coef0: float = 1.0) -> tuple[float, float]:
    """KID of features (N1, D) against (N2, D), N1, N2 >= ``subset_size``: (mean, std) over subsets."""
    f1, f2 = (np.asarray(f, dtype=np.float64) for f in (features_1, features_2))
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"KID needs two (N, D) feature arrays of one D, got {f1.shape} and {f2.shape}")
    if min(len(f1), len(f2)) < subset_size or subset_size < 2:
        raise ValueError(f"KID subset size {subset_size} needs 2 <= size <= {min(len(f1), len(f2))}")
    mmds = []
    for i1, i2 in subset_indices(len(f1), len(f2), subsets, subset_size, seed):
        x, y = f1[i1], f2[i2]
        mmds.append(_unbiased_mmd2(_poly_kernel(x, x, degree, coef0), _poly_kernel(x, y, degree, coef0),
                                   _poly_kernel(y, y, degree, coef0)))
    return float(np.mean(mmds)), float(np.std(mmds))
