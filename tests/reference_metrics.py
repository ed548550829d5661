"""Independent references for the metrics, written from the papers with numpy and scipy (never
with evalgen's metric code), shared by the tests that check recorded numbers against them."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.special

__all__ = ["frechet_distance", "inception_score", "unbiased_mmd2_poly"]


def inception_score(logits: np.ndarray, splits: int = 10, seed: int = 2020) -> float:
    """Salimans et al. (2016): exp(E_x KL(p(y|x) || p(y))) on each of ``splits`` consecutive chunks of
    one fixed shuffle (torch-fidelity's, seed 2020), averaged; numpy, from the classifier's logits."""
    n = len(logits)
    log_p = scipy.special.log_softmax(logits[np.random.RandomState(seed).permutation(n)], axis=1)
    scores = []
    for i in range(splits):
        chunk = log_p[i * n // splits:(i + 1) * n // splits]
        log_marginal = np.log(np.exp(chunk).mean(axis=0))
        scores.append(np.exp((np.exp(chunk) * (chunk - log_marginal)).sum(axis=1).mean()))
    return float(np.mean(scores))


def frechet_distance(f1: np.ndarray, f2: np.ndarray) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^1/2) with scipy's sqrtm, in float64 (Heusel et al. 2017)."""
    f1, f2 = np.asarray(f1, dtype=np.float64), np.asarray(f2, dtype=np.float64)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((f1.mean(0) - f2.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * root))


def unbiased_mmd2_poly(f1: np.ndarray, f2: np.ndarray) -> float:
    """KID's kernel MMD^2, unbiased (Bińkowski et al. 2018, eq. 3): k(a, b) = (a.b / d + 1)^3 on all
    pairs, in float64."""
    f1, f2 = np.asarray(f1, dtype=np.float64), np.asarray(f2, dtype=np.float64)

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a @ b.T / a.shape[1] + 1) ** 3

    kxx, kyy, kxy = kernel(f1, f1), kernel(f2, f2), kernel(f1, f2)
    m, n = len(f1), len(f2)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.mean())
