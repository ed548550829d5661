"""The IWAE bound against a closed form: the 1-D linear-Gaussian model.

p(z) = N(0, 1), p(x|z) = N(z, s2), so p(x) = N(0, 1 + s2) and p(z|x) = N(x / (1 + s2), s2 / (1 + s2)).
"""

import math

import numpy as np
import pytest
import torch
from scipy.special import logsumexp

from evalgen.errors import EvalgenError
from evalgen.metrics.bounds import (
    BoundEstimate,
    importance_weighted_bound,
    iwae_label,
    iwae_likelihood,
    log_mean_exp,
)
from evalgen.types import Likelihood, LikelihoodKind

S2 = 0.5  # observation variance sigma^2
WRONG_SCALE, WRONG_STD = 0.3, 1.5  # wrong q(z|x) = N(0.3 x, 1.5^2); exact mean is x / 1.5


def normal_log_pdf(v, mean, var):
    return -0.5 * (math.log(2 * math.pi) + torch.log(torch.as_tensor(var, dtype=torch.float64))
                   + (v - mean) ** 2 / var)


def log_px(x):
    return normal_log_pdf(x, 0.0, 1 + S2)


def make_log_weights(q_mean_fn, q_std_fn, generator=None, eps=None):
    """log p(x, z) - log q(z|x) for z = mean + std * eps; eps from ``generator``, or sliced in
    order from a fixed (K, N) tensor ``eps`` (the same random stream however it is chunked)."""
    state = {"used": 0, "calls": []}

    def log_weights(x, k):
        if eps is None:
            e = torch.randn((k, x.shape[0]), generator=generator, dtype=torch.float64)
        else:
            e = eps[state["used"]:state["used"] + k]
        state["used"] += k
        state["calls"].append(k)
        mean, std = q_mean_fn(x), q_std_fn(x)
        z = mean + std * e
        return (normal_log_pdf(z, 0.0, 1.0) + normal_log_pdf(x, z, S2)
                - normal_log_pdf(z, mean, std ** 2))

    return log_weights, state


def exact_posterior():
    return make_log_weights(lambda x: x / (1 + S2), lambda x: torch.full_like(x, math.sqrt(S2 / (1 + S2))),
                            torch.Generator().manual_seed(0))


def wrong_q(seed=0, eps=None):
    return make_log_weights(lambda x: WRONG_SCALE * x, lambda x: torch.full_like(x, WRONG_STD),
                            torch.Generator().manual_seed(seed), eps)


def analytic_elbo(x):
    """E_q[log p(x|z)] - KL(q || p(z)) for q = N(mu, s^2), in closed form."""
    mu, s2q = WRONG_SCALE * x, WRONG_STD ** 2
    expected_loglik = -0.5 * math.log(2 * math.pi * S2) - ((x - mu) ** 2 + s2q) / (2 * S2)
    kl = 0.5 * (s2q + mu ** 2 - 1 - math.log(s2q))
    return expected_loglik - kl


def data(n, seed=1):
    return torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * math.sqrt(1 + S2)


@pytest.mark.parametrize("k,chunk", [(1, None), (7, None), (100, 13), (1000, 250)])
def test_exact_posterior_gives_log_px_for_every_k(k, chunk):
    x = data(50)
    fn, _ = exact_posterior()
    bound = importance_weighted_bound(fn, x, k, chunk)
    assert bound.shape == (50,) and bound.dtype == torch.float64
    assert torch.allclose(bound, log_px(x), atol=1e-5, rtol=0)


def test_wrong_q_bound_is_below_log_px_and_grows_with_k():
    x = data(2000)
    truth = log_px(x)
    means = {}
    for k in (1, 10, 100):
        fn, _ = wrong_q(seed=k)
        bound = importance_weighted_bound(fn, x, k, chunk_size=50)
        means[k] = bound.mean().item()
        # L_K <= log p(x) holds in expectation over z (one draw may land above it), so the
        # average over 2000 examples must sit below the average truth
        assert means[k] < truth.mean().item()
    assert means[1] < means[10] < means[100] < truth.mean().item()
    # with a wrong q the gap at K=1 is not small (that is the point of the test)
    assert truth.mean().item() - means[1] > 0.1


def test_k1_is_the_elbo_within_monte_carlo_error():
    x = data(20000, seed=2)
    fn, _ = wrong_q(seed=3)
    bound = importance_weighted_bound(fn, x, 1)
    elbo = analytic_elbo(x)
    diff = bound - elbo  # zero mean, independent across examples
    sem = diff.std().item() / math.sqrt(diff.numel())
    assert abs(diff.mean().item()) < 4 * sem
    # and the ELBO is below log p(x) by KL(q || p(z|x)) > 0 on every example
    assert (elbo < log_px(x)).all()


@pytest.mark.parametrize("chunk", [1, 7, 64, 100, 1000])
def test_chunked_equals_unchunked_on_the_same_random_stream(chunk):
    k, n = 100, 30
    x = data(n)
    eps = torch.randn((k, n), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    whole_fn, whole_state = wrong_q(eps=eps)
    chunk_fn, chunk_state = wrong_q(eps=eps)
    whole = importance_weighted_bound(whole_fn, x, k)
    chunked = importance_weighted_bound(chunk_fn, x, k, chunk_size=chunk)
    assert whole_state["calls"] == [k]
    assert sum(chunk_state["calls"]) == k and max(chunk_state["calls"]) <= chunk
    assert torch.allclose(chunked, whole, atol=1e-12, rtol=0)
    # and both equal a direct log-mean-exp of the full weight tensor
    direct_fn, _ = wrong_q(eps=eps)
    weights = direct_fn(x, k).numpy()
    assert np.allclose(whole.numpy(), logsumexp(weights, axis=0) - math.log(k), atol=1e-12, rtol=0)


def test_k5000_is_computed_in_bounded_chunks():
    x = data(200)
    fn, state = wrong_q(seed=7)
    with torch.no_grad():
        bound = importance_weighted_bound(fn, x, 5000, chunk_size=500)
    assert state["calls"] == [500] * 10
    assert torch.isfinite(bound).all()
    gap = (log_px(x) - bound).mean().item()
    assert abs(gap) < 0.01  # K=5000 closes the gap of this 1-D model up to Monte Carlo noise


def test_float32_weights_give_float32_bound_and_extreme_weights_stay_finite():
    x = torch.zeros(3)

    def fn(x, k):
        w = torch.full((k, 3), -1e4, dtype=torch.float32)
        w[:, 1] = 1e4
        w[:, 2] = float("-inf")
        return w

    bound = importance_weighted_bound(fn, x, 10, chunk_size=3)
    assert bound.dtype == torch.float32
    assert bound[0].item() == pytest.approx(-1e4) and bound[1].item() == pytest.approx(1e4)
    assert bound[2].item() == float("-inf") and not torch.isnan(bound).any()


def test_bad_arguments_and_bad_weights_are_one_line_errors():
    x = data(4)
    fn, _ = wrong_q()
    for k, chunk in ((0, None), (10, 0), (2.5, None)):
        with pytest.raises(EvalgenError):
            importance_weighted_bound(fn, x, k, chunk)
    with pytest.raises(EvalgenError, match=r"\(3, 4\)") as info:
        importance_weighted_bound(lambda x, k: torch.zeros(x.shape[0], k), x, 3)
    assert "\n" not in str(info.value)


def test_labels():
    assert iwae_label(5000) == "IWAE, K=5000"
    assert iwae_likelihood(5000) == Likelihood(LikelihoodKind.LOWER_BOUND, iwae_label(5000))
    assert iwae_likelihood(5000).label == "lower bound (IWAE, K=5000)"
    est = BoundEstimate(torch.zeros(2), 10)
    assert est.label == "IWAE, K=10" and est.likelihood.kind is LikelihoodKind.LOWER_BOUND
    with pytest.raises(EvalgenError):
        iwae_label(0)


def test_harness_set_k_goes_into_the_label():
    open_k = iwae_likelihood()
    assert open_k.sample_count == "K" and open_k.label == "lower bound (IWAE)"
    assert open_k.with_samples(100) == Likelihood(LikelihoodKind.LOWER_BOUND, "IWAE, K=100")
    assert open_k.with_samples(100).label == "lower bound (IWAE, K=100)"
    assert iwae_likelihood(50).with_samples(100) == iwae_likelihood(50)  # a K the plugin fixed stays
    assert Likelihood().with_samples(100) == Likelihood()  # exact: nothing to fill in


# --- log_mean_exp ------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_log_mean_exp_matches_scipy(dim):
    x = torch.randn((6, 9), generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 30
    expected = logsumexp(x.numpy(), axis=dim) - math.log(x.shape[dim])
    assert np.allclose(log_mean_exp(x, dim).numpy(), expected, rtol=1e-12, atol=1e-12)


def test_log_mean_exp_large_values_and_all_minus_inf_rows():
    x = torch.tensor([[1e4, 1e4 - 1.0, 0.0],
                      [-1e4, -1e4, -1e4],
                      [float("-inf")] * 3,
                      [float("-inf"), 2.0, float("-inf")]], dtype=torch.float64)
    got = log_mean_exp(x, dim=1)
    expected = logsumexp(x.numpy(), axis=1) - math.log(3)
    assert not torch.isnan(got).any()
    assert got[2].item() == float("-inf")
    assert np.allclose(got.numpy()[[0, 1, 3]], expected[[0, 1, 3]], rtol=1e-12)
    assert got[0].item() == pytest.approx(1e4 + math.log((1 + math.exp(-1)) / 3), abs=1e-9)
    # float32 at 1e4 must not overflow either
    assert torch.isfinite(log_mean_exp(torch.full((5,), 1e4, dtype=torch.float32))).all()
    with pytest.raises(EvalgenError):
        log_mean_exp(torch.zeros(0))
