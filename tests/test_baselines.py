"""The independent-pixel baselines against closed-form computations."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from evalgen_baselines.models import FactorizedCategorical, FactorizedGaussian


def test_categorical_log_prob_is_the_sum_of_per_dimension_log_probabilities():
    torch.manual_seed(0)
    model = FactorizedCategorical((1, 2, 3), levels=5)
    with torch.no_grad():
        model.logits.normal_()
    x = torch.randint(0, 5, (7, 1, 2, 3)).float()
    probs = torch.softmax(model.logits, -1).detach().numpy()
    flat = x.reshape(7, -1).long().numpy()
    expected = np.log(probs[np.arange(6), flat]).sum(axis=1)
    np.testing.assert_allclose(model.log_prob(x).detach().numpy(), expected, rtol=1e-6)


def test_categorical_normalizes_by_enumeration():
    model = FactorizedCategorical((3,), levels=3)
    with torch.no_grad():
        model.logits.normal_()
    grid = torch.cartesian_prod(*[torch.arange(3.0)] * 3)
    assert float(model.log_prob(grid).detach().exp().sum()) == pytest.approx(1.0, abs=1e-6)


def test_gaussian_log_prob_matches_scipy():
    model = FactorizedGaussian((2,))
    with torch.no_grad():
        model.mean.copy_(torch.tensor([0.5, -1.0]))
        model.log_std.copy_(torch.tensor([0.1, -0.3]))
    x = torch.randn(10, 2)
    expected = stats.norm(loc=[0.5, -1.0], scale=np.exp([0.1, -0.3])).logpdf(x.numpy()).sum(1)
    np.testing.assert_allclose(model.log_prob(x).detach().numpy(), expected, rtol=1e-5)


def test_trained_categorical_reaches_the_closed_form_maximum_likelihood(tmp_path):
    """Through the whole harness, the baseline's test NLL on digits matches the NLL of the
    smoothed per-pixel frequencies computed with numpy from the training set."""
    from evalgen.datasets.base import LoadContext
    from evalgen.harness.runner import RunContext, run_one
    from evalgen.harness.spec import RunSpec
    from evalgen.plugins import load_plugins

    plugins = load_plugins()
    ctx = RunContext(plugins, tmp_path, torch.device("cpu"), LoadContext(tmp_path, False))
    record, _ = run_one(RunSpec("baselines", "categorical", "digits", "quick", 0), ctx)
    data = ctx.dataset("digits")
    train = data.train.x.reshape(len(data.train), -1).long().numpy()
    test = data.test.x.reshape(len(data.test), -1).long().numpy()
    counts = np.stack([np.bincount(train[:, d], minlength=17) for d in range(64)]) + 0.5
    log_p = np.log(counts / counts.sum(1, keepdims=True))
    closed_form = -log_p[np.arange(64), test].sum(1).mean()
    # SGD with early stopping lands near, not on, the smoothed MLE
    assert abs(record.metrics["test_nll"]["nats"] - closed_form) < 0.02 * closed_form
    assert record.metrics["test_nll"]["bits_per_dim"] == pytest.approx(
        record.metrics["test_nll"]["nats"] / (64 * math.log(2)), abs=1e-9)
