"""The `vae` family trained: bounds grow with K, conditional samples have the requested class,
and the harness labels and fills every number of a VAE run."""

from __future__ import annotations

import math
import os

import pytest
import torch
import toy_plugins

from evalgen import split_inputs
from evalgen.datasets.base import LoadContext
from evalgen.harness.checkpoints import checkpoint_path, read_checkpoint
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
    model = _train("vae", digits, steps=500)
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
    model = _train("cvae", digits, steps=1000)
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


#: Independent K = 1 draws per test example for the reference ELBO.
ELBO_DRAWS = 16


def _reference_elbo(record, ctx) -> tuple[float, float]:
    """-ELBO in nats/example recomputed from the checkpoint, outside the harness: the family's own
    log_prob with K = 1 (one importance sample is the ELBO), averaged over `ELBO_DRAWS` draws per
    example; returns it and the Monte-Carlo standard error of a single-draw mean."""
    info = ctx.dataset("digits").info()
    model = hooks.evalgen_build_model(model_name="vae", dataset=info, config=record.model.options)
    model.load_state_dict(read_checkpoint(checkpoint_path(ctx.out_dir, record.key))["state_dict"])
    model.eval()
    x = split_inputs(ctx.dataset("digits"), "test", ctx.plugins.family("vae").model("vae"))
    torch.manual_seed(1234)
    with torch.no_grad():
        draws = torch.stack([hooks.evalgen_log_prob(model=model, x=x, num_importance_samples=1).double()
                             for _ in range(ELBO_DRAWS)])  # (draws, N)
    single_draw_se = float(draws.std(0).pow(2).mean().sqrt() / math.sqrt(x.shape[0]))
    return float(-draws.mean()), single_draw_se


def test_harness_labels_the_bound_and_reports_the_elbo(tmp_path, monkeypatch):
    """References: the -ELBO the harness reports beside the IWAE bound equals an independent K = 1
    computation from the checkpoint (within 3 Monte-Carlo standard errors), and lies above the
    bound's NLL by the gap a K = 20 bound closes (Burda et al. 2016: the bound grows with K), so
    an "ELBO" computed with the bound's K would fail both. Outliers are scored with the
    validation K (1 here) on both sides, and only the test set pays for K = 20."""
    from evalgen.harness.contract import CheckedHooks

    examples_at_k: dict[int, int] = {}
    original = CheckedHooks.log_prob

    def counting(self, model, x, k):
        examples_at_k[k] = examples_at_k.get(k, 0) + x.shape[0]
        return original(self, model, x, k)

    monkeypatch.setattr(CheckedHooks, "log_prob", counting)
    plugins = load_plugins(extra=[("unit-budget", toy_plugins.UnitBudget())])
    ctx = RunContext(plugins, tmp_path, torch.device("cpu"), LoadContext(tmp_path / "data", False))
    record, samples = run_one(RunSpec("vae", "vae", "digits", "unit", 0, importance_samples=20), ctx)
    assert examples_at_k[20] == record.dataset.sizes[2]  # the test set, once
    assert set(examples_at_k) == {1, 20}
    assert record.model.likelihood == "lower bound (IWAE, K=20)"
    assert record.model.importance_samples == ImportanceSamples(test=20, validation=1)
    assert record.key.endswith("--K20")
    nll = record.metrics["test_nll"]
    assert nll["kind"] == "lower bound" and nll["estimator"] == "IWAE, K=20"
    reference, se = _reference_elbo(record, ctx)
    assert abs(nll["elbo"]["nats"] - reference) < 3 * se, (nll["elbo"]["nats"], reference, se)
    assert reference - nll["nats"] > 4 * se  # the K = 20 bound is tighter by more than the noise
    assert record.metrics["outliers"]["score"] == "-log p(x) / D (lower bound: IWAE, K=1)"
    assert record.metrics["sample_quality"]["extractor"] == "digits-classifier"
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
