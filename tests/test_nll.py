"""NLL and bits/dim against closed forms."""

import math

import numpy as np
import pytest
import torch

from evalgen.metrics.nll import bits_per_dim, nll_nats, summarize_nll
from evalgen.types import Likelihood, LikelihoodKind, Representation


@pytest.mark.parametrize("levels,dims", [(2, 784), (17, 64), (256, 784)])
def test_uniform_models_agree_across_representations(levels, dims):
    """A uniform pmf over levels^D and the uniform density on [0,1)^D are the same model:
    both must give exactly log2(levels) bits/dim once the dequantization offset is applied."""
    n = 5
    pmf_log_prob = torch.full((n,), -dims * math.log(levels), dtype=torch.float64)
    density_log_prob = torch.zeros(n)  # log 1 on the unit cube
    for log_p, rep in ((pmf_log_prob, Representation.LEVELS), (density_log_prob, Representation.DEQUANTIZED)):
        nll = nll_nats(log_p, rep, dims, levels)
        assert bits_per_dim(float(nll.mean()), dims) == pytest.approx(math.log2(levels), rel=1e-12)


def test_continuous_data_reports_nats_without_bits_per_dim():
    result = summarize_nll(torch.tensor([-1.0, -3.0]), Representation.CONTINUOUS, 2, None, Likelihood())
    assert result.nats == pytest.approx(2.0)
    assert result.bits_per_dim is None
    assert result.nats_sem == pytest.approx(np.std([1.0, 3.0], ddof=1) / math.sqrt(2))


def test_summary_carries_the_kind_and_estimator():
    bound = Likelihood(LikelihoodKind.LOWER_BOUND, "IWAE, K=5000")
    result = summarize_nll(torch.tensor([-100.0]), Representation.LEVELS, 784, 2, bound)
    assert result.kind == "lower bound" and result.estimator == "IWAE, K=5000"
    assert bound.label == "lower bound (IWAE, K=5000)"
    assert result.bits_per_dim == pytest.approx(100 / (784 * math.log(2)))


def test_dequantized_needs_levels():
    with pytest.raises(ValueError):
        nll_nats(torch.zeros(1), Representation.DEQUANTIZED, 4, None)
