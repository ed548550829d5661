"""The `vae` family trained: bounds grow with K, conditional samples have the requested class,
and the harness labels and fills every number of a VAE run."""

from __future__ import annotations

import math
import os

import pytest
import torch
import toy_plugins

from evalgen.datasets.base import LoadContext
from evalgen.harness.runner import RunContext, run_one
from evalgen.harness.spec import RunSpec
from evalgen.metrics.extractors import LOGITS, ensure_extractor, extract_features, to_uint8
from evalgen.options import resolved_options
from evalgen.plugins import load_plugins
from evalgen.record_types import ImportanceSamples
from evalgen_vae import hooks


def _digits(tmp_path_factory):
    return load_plugins().datasets.get("digits").load(LoadContext(tmp_path_factory.mktemp("nodata"), False))


def _train(model_name: str, dataset, steps: int, config=None, seed: int = 0):
    """A plain training loop through the family's hooks (batch 128, Adam 1e-3)."""
    torch.manual_seed(seed)
    config = resolved_options(hooks.evalgen_family(), model_name, config)
    model = hooks.evalgen_build_model(model_name=model_name, dataset=dataset.info(), config=config)
    opt = hooks.evalgen_configure_optimizers(model=model, config=config)["model"]
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        index = torch.randint(0, len(dataset.train), (128,), generator=g)
        loss = model.loss(dataset.train.x[index], dataset.train.y[index])["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return _digits(tmp_path_factory)


def test_bound_grows_with_k_on_a_trained_model(digits):
    model = _train("vae", digits, steps=1500)
    x = digits.test.x
    torch.manual_seed(0)
    with torch.no_grad():
        bounds = {k: model.log_prob(x, k).double() for k in (1, 10, 100)}
    means = {k: float(b.mean()) for k, b in bounds.items()}
    print("digits test bound (nats): " + ", ".join(f"K={k}: {m:.3f}" for k, m in means.items()))
    for small, large in ((1, 10), (10, 100)):
        diff = bounds[large] - bounds[small]
        sem = float(diff.std()) / math.sqrt(len(diff))
        assert means[large] > means[small] + 2 * sem, (small, large, sem)


def _conditional_accuracy(model, dataset, weights, per_class: int = 100) -> tuple[float, list[float]]:
    labels = torch.arange(len(dataset.info().label_counts)).repeat_interleave(per_class)
    samples = model.sample(len(labels), torch.Generator().manual_seed(1), labels=labels)
    predicted = extract_features(to_uint8(samples, dataset.levels), weights)[LOGITS].argmax(1)
    hits = predicted == labels
    return float(hits.float().mean()), [float(hits[labels == c].float().mean()) for c in labels.unique()]


def test_cvae_conditional_samples_have_the_requested_class_on_digits(digits, evalgen_cache):
    model = _train("cvae", digits, steps=2000)
    weights = ensure_extractor("digits-classifier", dataset=digits, cache_dir=evalgen_cache)
    accuracy, per_class = _conditional_accuracy(model, digits, weights)
    print(f"digits cvae: {accuracy:.3f} of class-conditional samples classified as asked; "
          f"per class {[round(a, 2) for a in per_class]}")
    assert accuracy >= 0.9
    unconditional = model.sample(2000, torch.Generator().manual_seed(2))
    assert unconditional.shape == (2000, 1, 8, 8)


@pytest.mark.long
def test_cvae_conditional_samples_have_the_requested_class_on_mnist(mnist, mnist_weights):
    steps = int(os.environ.get("EVALGEN_CVAE_STEPS", "10000"))
    seed = int(os.environ.get("EVALGEN_CVAE_SEED", "0"))
    model = _train("cvae", mnist, steps=steps, seed=seed)
    accuracy, per_class = _conditional_accuracy(model, mnist, mnist_weights)
    print(f"mnist cvae, seed {seed}, after {steps} steps: {accuracy:.3f} of class-conditional samples "
          f"classified as asked; per class {[round(a, 2) for a in per_class]}")
    assert accuracy >= 0.9


def test_harness_labels_the_bound_and_reports_the_elbo(tmp_path):
    plugins = load_plugins(extra=[("unit-budget", toy_plugins.UnitBudget())])
    ctx = RunContext(plugins, tmp_path, torch.device("cpu"), LoadContext(tmp_path / "data", False))
    record, samples = run_one(RunSpec("vae", "vae", "digits", "unit", 0, importance_samples=20), ctx)
    assert record.model.likelihood == "lower bound (IWAE, K=20)"
    assert record.model.importance_samples == ImportanceSamples(test=20, validation=1)
    assert record.key.endswith("--K20")
    nll = record.metrics["test_nll"]
    assert nll["kind"] == "lower bound" and nll["estimator"] == "IWAE, K=20"
    assert nll["elbo"]["nats"] >= nll["nats"] - 4 * nll["nats_sem"]  # -ELBO is the looser bound
    quality = record.metrics["sample_quality"]
    assert quality["inception_score_mean"] > 1 and quality["fid"] > 0 and quality["extractor"] == "digits-classifier"
    assert record.metrics["outliers"]["score"] == "-log p(x) / D (lower bound: IWAE, K=20)"
    assert samples.shape == (256, 1, 8, 8)


def test_planning_leaves_out_label_models_on_unlabelled_data():
    from evalgen.errors import EvalgenError
    from evalgen.planning import plan_specs

    plugins = load_plugins()
    specs = plan_specs(plugins, "vae", [], "binarized-mnist", "smoke", 1, {}, baseline=False,
                       importance_samples=7)
    assert [s.model for s in specs] == ["vae", "vae-conv", "iwae"]
    assert all(s.importance_samples == 7 for s in specs)
    flows = plan_specs(plugins, "flows", ["maf"], "digits", "smoke", 1, {}, baseline=True, importance_samples=7)
    assert [s.importance_samples for s in flows] == [None, None]  # exact likelihoods: no K in the key
    with pytest.raises(EvalgenError, match="at least 1"):
        plan_specs(plugins, "vae", [], "digits", "smoke", 1, {}, baseline=False, importance_samples=0)
