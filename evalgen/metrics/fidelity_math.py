"""The settings of the sample-quality metrics, in one place, and their arithmetic on features:
FID in float64 with evalgen's tolerances, precision/recall on equal subsets, the notes that say
when an FID is less trustworthy. `evalgen.metrics.fidelity` extracts the features and calls these.
"""

from __future__ import annotations

import numpy as np
import torch

from evalgen.metrics import frechet

__all__ = [
    "DEFAULTS",
    "DEFAULT_BATCH_SIZE",
    "MIN_SAMPLES",
    "SPLITS",
    "SPREADS",
    "TORCH_FIDELITY_SETTINGS",
    "fid_notes",
    "frechet_distance",
    "prc_subsets",
    "precision_and_recall",
    "torch_fidelity_settings",
]

#: Every setting of the metrics, in one place (kid_subset_size and isc_splits are capped by the counts).
DEFAULTS = {
    "batch_size": 250,
    "reference_split": "test",
    "isc_splits": 10,
    "kid_subsets": 100,
    "kid_subset_size": 1000,
    "kid_kernel": "poly",
    "kid_kernel_poly_degree": 3,
    "kid_kernel_poly_coef0": 1,
    "prc_neighborhood": 3,
    "prc_batch_size": 10000,
    "rng_seed": 2020,
    "sqrtm_max_imag": 1e-3,  # largest |imag| on sqrtm's diagonal still read as rounding (as TTUR)
    "sqrtm_max_residual": 1e-6,  # ||C @ C - S1 @ S2||_F / ||S1 @ S2||_F above this: use the fallback
    "fid_agreement_rtol": 1e-4,  # our FID vs torch-fidelity's, relative to the FID's scale
}
#: The DEFAULTS passed to torch-fidelity's metric functions as they are.
TORCH_FIDELITY_SETTINGS = ("kid_subsets", "kid_kernel", "kid_kernel_poly_degree", "kid_kernel_poly_coef0",
                           "prc_neighborhood", "prc_batch_size", "rng_seed")
DEFAULT_BATCH_SIZE: int = DEFAULTS["batch_size"]
MIN_SAMPLES = DEFAULTS["prc_neighborhood"] + 1
SPLITS = ("train", "valid", "test")


#: What ``inception_score_std`` and ``kid_std`` measure, in words (the record keeps them labelled).
SPREADS = {"inception_score_std": "std of IS over the splits of the first draw (torch-fidelity)",
           "kid_std": "std of KID over the subsets of the first draw (torch-fidelity's estimator)"}


def frechet_distance(features_1, features_2) -> tuple[float, str]:
    """FID between two feature sets (N, D), in float64, with evalgen's tolerances
    (`evalgen.metrics.frechet.frechet_distance`); returns (value, square-root method)."""
    return frechet.frechet_distance(features_1, features_2, max_imag=DEFAULTS["sqrtm_max_imag"],
                                    max_residual=DEFAULTS["sqrtm_max_residual"])


def prc_subsets(num_generated: int, num_reference: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the generated and reference features that precision/recall compares.

    Both have m = min(num_generated, num_reference) entries: the first m generated samples (they
    are i.i.d.) and a fixed random m of the reference set (seed ``DEFAULTS["rng_seed"]``), sorted.
    """
    m = min(num_generated, num_reference)
    generator = torch.Generator().manual_seed(DEFAULTS["rng_seed"])
    reference = torch.randperm(num_reference, generator=generator)[:m].sort().values
    return torch.arange(m), reference


def precision_and_recall(generated: torch.Tensor, reference: torch.Tensor) -> tuple[float, float, int]:
    from torch_fidelity.metric_prc import prc_features_to_metric

    gen_idx, ref_idx = prc_subsets(len(generated), len(reference))
    out = prc_features_to_metric(generated[gen_idx], reference[ref_idx], verbose=False, save_cpu_ram=True,
                                 prc_neighborhood=DEFAULTS["prc_neighborhood"],
                                 prc_batch_size=DEFAULTS["prc_batch_size"])
    return float(out["precision"]), float(out["recall"]), len(gen_idx)


def torch_fidelity_settings(num_generated: int, num_reference: int) -> dict:
    """The keyword arguments torch-fidelity's metric functions get: `DEFAULTS` as in ``calculate_metrics``
    (shuffled IS splits, KID subsets drawn from ``rng_seed``), with IS splits and KID subset size capped."""
    settings = {k: DEFAULTS[k] for k in TORCH_FIDELITY_SETTINGS}
    settings.update(isc_splits=min(DEFAULTS["isc_splits"], num_generated),
                    kid_subset_size=min(DEFAULTS["kid_subset_size"], num_generated, num_reference),
                    samples_shuffle=True, verbose=False)
    return settings


def fid_notes(f1: np.ndarray, f2: np.ndarray, fid: float, fid_tf: float, method: str, extractor: str) -> list[str]:
    """What makes an FID less trustworthy: the fallback root, too few samples, disagreement."""
    notes, dim = [], f1.shape[1]
    if method == "eigh":
        notes.append("FID: scipy sqrtm failed, went complex or was inaccurate; used the eigh fallback")
    for what, count in (("generated", len(f1)), ("reference", len(f2))):
        if count < dim:
            notes.append(f"{count} {what} samples < feature dimension {dim} ({extractor}): the covariance is "
                         f"singular and FID/KID are unreliable; use more samples")
    scale = float(np.var(f1, axis=0).sum() + np.var(f2, axis=0).sum()) + abs(fid)
    if abs(fid - fid_tf) > DEFAULTS["fid_agreement_rtol"] * scale:
        notes.append(f"FID {fid:.6g} (float64) disagrees with torch-fidelity's {fid_tf:.6g}")
    return notes
