"""The built-in metrics, registered through ``evalgen_register_metrics`` like any plugin's."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from evalgen.datasets.base import Dataset
from evalgen.markers import hookimpl
from evalgen.metrics.columns import MetricColumn, read_field
from evalgen.metrics.nll import log_z_standard_error, nll_uncertainty, summarize_nll
from evalgen.metrics.outlier_detection import OUTLIER_SEED  # noqa: F401 - re-exported: tests seed the same sets
from evalgen.metrics.outlier_scores import BUILTIN_SCORES, OutlierScore
from evalgen.metrics.registry import MetricInputs, MetricSpec
from evalgen.types import DataKind, Likelihood

IMAGE_KINDS = frozenset({DataKind.BINARY, DataKind.DISCRETE})


def _test_nll(inputs: MetricInputs) -> dict[str, Any]:
    info = inputs.info
    log_p = inputs.test_log_prob if inputs.test_dequantization is None else inputs.test_dequantization
    summary = summarize_nll(log_p, info.representation, info.num_dims, info.levels, inputs.likelihood)
    result = summary.to_dict()
    result.update(nll_uncertainty(summary, log_z_standard_error(inputs.likelihood_details)))
    if inputs.test_elbo is not None:
        elbo = summarize_nll(inputs.test_elbo, info.representation, info.num_dims, info.levels,
                             Likelihood(inputs.likelihood.kind, "ELBO"))
        result["elbo"] = {"nats": elbo.nats, "nats_sem": elbo.nats_sem, "bits_per_dim": elbo.bits_per_dim,
                          "estimator": "ELBO (IWAE, K=1): one sample per example"}
    if inputs.likelihood_details is not None:
        result["details"] = inputs.likelihood_details
    if inputs.dataset.true_log_prob is not None:  # the truth a density model is measured against
        result["data_density"] = _data_density(inputs.dataset)
    return result


def _data_density(dataset: Dataset) -> dict[str, Any]:
    """The test NLL of the data's own closed-form density (continuous toy data), in nats."""
    log_p = dataset.true_log_prob(dataset.test.x).double()
    return {"nats": float(-log_p.mean()), "nats_sem": float(log_p.std() / len(log_p) ** 0.5),
            "estimator": "exact: the dataset's closed-form density on its test set"}


def _extractor_reason(inputs: MetricInputs) -> str | None:
    if inputs.dataset.feature_extractor is None and inputs.extractor is None:
        return f"dataset '{inputs.dataset.name}' names no feature extractor"
    return None


def _sample_quality(inputs: MetricInputs) -> dict[str, Any]:
    from evalgen.metrics.fidelity import sample_quality

    return sample_quality(inputs.samples, inputs.dataset, extractor=inputs.extractor, device=inputs.device,
                          cache_dir=inputs.cache_dir, load_dataset=inputs.load_dataset,
                          more_draws=inputs.more_samples, draw_seeds=inputs.sample_seeds).to_dict()


def _mode_coverage_reason(inputs: MetricInputs) -> str | None:
    if inputs.dataset.modes is not None:
        return None  # decided without importing the classifier side
    from evalgen.metrics.modes import skip_reason

    return skip_reason(inputs.dataset, inputs.cache_dir, inputs.load_dataset)


def _mode_coverage(inputs: MetricInputs) -> dict[str, Any]:
    from evalgen.metrics.modes import mode_coverage

    return mode_coverage(inputs.samples, inputs.dataset, cache_dir=inputs.cache_dir,
                         load_dataset=inputs.load_dataset)


def _outliers(inputs: MetricInputs) -> dict[str, Any]:
    from evalgen.metrics.outlier_detection import outlier_detection

    return outlier_detection(inputs)


def _headline_auroc(section: Mapping[str, Any]) -> Any:
    return read_field(section, f"sets.{section.get('headline')}.auroc")


def _auroc_label(section: Mapping[str, Any]) -> str | None:
    return f"{section['score']} vs {section['headline']}" if _headline_auroc(section) is not None else None


NLL_COLUMNS = (
    MetricColumn("bits_per_dim", "test NLL (bits/dim)", "bits_per_dim", digits=3, likelihood=True,
                 interval="intervals.bits_per_dim"),
    MetricColumn("nll_nats", "test NLL (nats)", "nats", digits=2, likelihood=True, always=True,
                 reference="data_density.nats", interval="intervals.nats"),
    MetricColumn("elbo_nats", "-ELBO (nats)", "elbo.nats", digits=2, prefix="≤ "),
)
def _over_draws(field: str) -> Callable[[Mapping[str, Any]], Any]:
    """The mean of ``field`` over the run's sample draws, or the one draw's value (older records)."""
    def value(section: Mapping[str, Any]) -> Any:
        mean = read_field(section, f"draws.metrics.{field}.mean")
        return mean if mean is not None else section.get(field)
    return value


def _drawn(name: str, title: str, field: str, digits: int) -> MetricColumn:
    """A sample-quality column: the mean over the draws, with their interval."""
    return MetricColumn(name, title, field, digits=digits, label="extractor", value=_over_draws(field),
                        interval=f"draws.metrics.{field}.interval")


def _headline_intervals(section: Mapping[str, Any]) -> Any:
    return read_field(section, f"sets.{section.get('headline')}.intervals.auroc")


SAMPLE_QUALITY_COLUMNS = (
    _drawn("inception_score", "IS", "inception_score_mean", 3),
    _drawn("fid", "FID", "fid", 2),
    MetricColumn("fid_infinity", "FID∞", "fid_infinity.value", digits=2, label="extractor",
                 interval="fid_infinity.interval", always=True),  # "—" where a record predates it
    _drawn("kid", "KID", "kid_mean", 4),
)
def score_column(score: OutlierScore) -> MetricColumn:
    """The AUROC column of one registered outlier score, on the headline set."""
    def value(section: Mapping[str, Any]) -> Any:
        return read_field(section, f"scores.{score.name}.sets.{section.get('headline')}.auroc")

    def describe(section: Mapping[str, Any]) -> str | None:  # the formula is in the legend
        return f"vs {section['headline']}" if value(section) is not None else None

    def interval(section: Mapping[str, Any]) -> Any:
        return read_field(section, f"scores.{score.name}.sets.{section.get('headline')}.intervals.auroc")

    return MetricColumn(f"auroc_{score.name}", score.title, f"auroc_{score.name}", digits=3, value=value,
                        describe=describe, run_interval=interval, always=True)


#: The headline AUROC (the family's score, or -log p(x) / D), then one column per fix.
OUTLIER_COLUMNS = (MetricColumn("auroc", "AUROC", "auroc", digits=3, value=_headline_auroc, describe=_auroc_label,
                                run_interval=_headline_intervals),
                   *(score_column(score) for score in BUILTIN_SCORES if score.name != "likelihood"))
def _dynamics(inputs: MetricInputs) -> dict[str, Any]:
    from evalgen.metrics.dynamics import dynamics_summary

    points = inputs.traces.points
    summary = dynamics_summary([p.step for p in points], [p.counts for p in points])
    return {**summary, "steps": [p.step for p in points], "counts_of": inputs.traces.counts_of}


DYNAMICS_COLUMNS = (
    MetricColumn("mode_hops", "mode hops", "hopping.hops", digits=1),
    MetricColumn("collapse_step", "collapse at step", "collapse.at_step", digits=0),
)
MODE_COLUMNS = (
    MetricColumn("modes_covered", "modes", "modes_covered", digits=1, out_of="num_modes"),
    MetricColumn("high_quality", "HQ %", "high_quality", digits=1, scale=100.0),
    MetricColumn("mode_kl", "mode KL", "mode_kl", digits=3),
)

BUILTIN_METRICS = (
    MetricSpec("test_nll", "test negative log-likelihood (nats/example, bits/dim)",
               needs=frozenset({"log_prob"}), data_kinds=frozenset(DataKind),
               higher_is_better={"nats": False, "bits_per_dim": False, "elbo.nats": False}, compute=_test_nll,
               columns=NLL_COLUMNS),
    MetricSpec("sample_quality", "Inception Score, FID, KID, precision/recall via torch-fidelity",
               needs=frozenset({"samples", "images"}), data_kinds=IMAGE_KINDS,
               higher_is_better={"inception_score_mean": True, "fid": False, "fid_infinity.value": False,
                                 "kid_mean": False, "precision": True, "recall": True,
                                 "inception_score_infinity.value": True},
               compute=_sample_quality, applies=_extractor_reason, columns=SAMPLE_QUALITY_COLUMNS),
    MetricSpec("outliers", "outlier-detection AUROC, AUPR, FPR@95%TPR (synthetic and OOD sets)",
               needs=frozenset({"outlier_score", "images"}), data_kinds=IMAGE_KINDS,
               higher_is_better={"auroc": True, "aupr": True, "fpr_at_95_tpr": False,
                                 **{f"auroc_{score.name}": True for score in BUILTIN_SCORES}},
               compute=_outliers, columns=OUTLIER_COLUMNS),
    MetricSpec("mode_coverage", "modes covered, high-quality fraction and KL to the mode weights (mode collapse)",
               needs=frozenset({"samples"}), data_kinds=frozenset(DataKind),
               higher_is_better={"modes_covered": True, "high_quality": True, "mode_kl": False},
               compute=_mode_coverage, applies=_mode_coverage_reason, columns=MODE_COLUMNS),
    MetricSpec("dynamics", "mode collapse and mode hopping, from the modes traced over training",
               needs=frozenset({"traces"}), data_kinds=frozenset(DataKind),
               higher_is_better={"hopping.hops": False}, compute=_dynamics, columns=DYNAMICS_COLUMNS),
)


@hookimpl
def evalgen_register_metrics(register) -> None:
    for metric in BUILTIN_METRICS:
        register(metric)


@hookimpl
def evalgen_register_outlier_scores(register) -> None:
    for score in BUILTIN_SCORES:
        register(score)
