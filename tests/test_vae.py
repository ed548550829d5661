"""The `vae` family: bounds against closed forms, decoders by enumeration, the networks and decoder
chosen for MNIST-sized data through the conformance kit (every model's contract on small data is
checked by tests/test_conformance_bundled.py)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

from evalgen import DataKind, DatasetInfo, Representation
from evalgen.options import resolved_options
from evalgen.testing import DEFAULTS, check_plugin
from evalgen_vae import hooks
from evalgen_vae.likelihoods import Bernoulli, Categorical, DiscretizedLogistic, Gaussian
from evalgen_vae.vae import VAE

# --- probabilistic PCA: a linear-Gaussian VAE whose marginal likelihood is exact ---------------


class _LinearEncoder(nn.Module):
    """q(z|x) = N(A (x - mu), diag(s^2)): a linear Gaussian encoder."""

    def __init__(self, a: torch.Tensor, mu: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.a, self.mu, self.log_std = a, mu, std.log()

    def forward(self, x, label=None):
        mean = (x - self.mu) @ self.a.T
        return mean, self.log_std.expand_as(mean)


class _LinearDecoder(nn.Module):
    """p(x|z) = N(W z + mu, sigma^2 I), as (mean, log_std) per dimension."""

    def __init__(self, w: torch.Tensor, mu: torch.Tensor, sigma: float) -> None:
        super().__init__()
        self.w, self.mu, self.log_sigma = w, mu, math.log(sigma)

    def forward(self, z, label=None):
        mean = z @ self.w.T + self.mu
        return torch.stack([mean, torch.full_like(mean, self.log_sigma)], dim=-1)


@pytest.fixture(scope="module")
def ppca():
    g = torch.Generator().manual_seed(0)
    d, latent, sigma = 6, 2, 0.7
    w = torch.randn(d, latent, generator=g, dtype=torch.float64)
    mu = torch.randn(d, generator=g, dtype=torch.float64)
    m = w.T @ w + sigma**2 * torch.eye(latent, dtype=torch.float64)
    # a deliberately imperfect q: the posterior mean M^-1 W^T (x - mu) shrunk by 10%, and
    # standard deviations 1.5x the optimal mean-field ones (the posterior precision is M / sigma^2)
    a = 0.9 * torch.linalg.solve(m, w.T)
    std = 1.5 / torch.sqrt(torch.diagonal(m / sigma**2))
    model = VAE((d,), None, _LinearEncoder(a, mu, std), _LinearDecoder(w, mu, sigma), Gaussian(), latent)
    z = torch.randn(200, latent, generator=g, dtype=torch.float64)
    x = z @ w.T + mu + sigma * torch.randn(200, d, generator=g, dtype=torch.float64)
    cov = (w @ w.T + sigma**2 * torch.eye(d, dtype=torch.float64)).numpy()
    exact = scipy.stats.multivariate_normal(mean=mu.numpy(), cov=cov).logpdf(x.numpy())
    # the ELBO in closed form: E_q log N(x; Wz + mu, sigma^2) - KL(q || N(0, I))
    q_mean = (x - mu) @ a.T
    residual = ((x - mu - q_mean @ w.T) ** 2).sum(1) + (torch.diagonal(w.T @ w) * std**2).sum()
    expected_log_lik = -0.5 * d * math.log(2 * math.pi * sigma**2) - residual / (2 * sigma**2)
    kl = 0.5 * (std**2 + q_mean**2 - 1 - torch.log(std**2)).sum(1)
    return model, x, torch.from_numpy(exact), (expected_log_lik - kl)


@pytest.mark.long  # 30-45 s: CI runs it after the suite (.ci/run)
def test_ppca_elbo_equals_its_closed_form(ppca):
    model, x, exact, elbo = ppca
    torch.manual_seed(0)
    k = 20_000
    mc = model.log_weights(x, k)  # (k, N): single-sample ELBO estimates
    sem = mc.std(0) / math.sqrt(k)
    analytic_kl = model.elbo(x.repeat(k, 1)).reshape(k, -1)  # the training ELBO (analytic KL)
    print(f"PPCA ELBO: closed form {elbo.mean():.5f}, Monte Carlo {mc.mean():.5f}, "
          f"analytic-KL estimator {analytic_kl.mean():.5f}; exact log p(x) {exact.mean():.5f}")
    assert torch.all((mc.mean(0) - elbo).abs() <= 5 * sem + 1e-9)
    assert torch.allclose(analytic_kl.mean(0), elbo, atol=5 * float(analytic_kl.std(0).max()) / math.sqrt(k))
    assert float((exact - elbo).mean()) > 0.1  # mean-field q: the ELBO is visibly loose


def test_ppca_iwae_bound_is_below_and_within_0_05_nats_of_the_exact_likelihood(ppca):
    model, x, exact, elbo = ppca
    torch.manual_seed(1)
    bounds = {k: model.log_prob(x, k) for k in (1, 10, 1000)}
    gap = {k: float((exact - b).mean()) for k, b in bounds.items()}
    print("PPCA exact - bound (nats, mean over 200 points): " + ", ".join(f"K={k}: {g:.4f}" for k, g in gap.items()))
    assert 0 <= gap[1000] <= 0.05
    assert gap[1] > gap[10] > gap[1000]
    k1_error = bounds[1] - elbo  # K = 1 is one draw of the ELBO: unbiased, with Monte Carlo noise
    assert abs(float(k1_error.mean())) < 4 * float(k1_error.std()) / math.sqrt(len(x))


# --- decoders: proper mass functions ----------------------------------------------------------


@pytest.mark.parametrize("pixel", [Bernoulli(), Categorical(17), DiscretizedLogistic(17), DiscretizedLogistic(256),
                                   DiscretizedLogistic(2)], ids=lambda p: f"{type(p).__name__}-{p.levels}")
def test_decoder_probabilities_sum_to_one_over_all_levels(pixel):
    g = torch.Generator().manual_seed(0)
    params = torch.randn(5, 3, pixel.params_per_dim, generator=g, dtype=torch.float64) * 2
    levels = torch.arange(pixel.levels, dtype=torch.float64)
    # log p of every level for every (example, dimension): sum over levels must be 1
    per_level = torch.stack([pixel.log_prob(params.unsqueeze(-2), torch.full((5, 3, 1), v, dtype=torch.float64))
                             for v in levels])  # (L, 5, 3)
    assert torch.allclose(torch.logsumexp(per_level, 0), torch.zeros(5, 3, dtype=torch.float64), atol=1e-10)


def test_discretized_logistic_matches_scipy():
    levels, mean, log_scale = 17, 0.2, -1.3
    pixel = DiscretizedLogistic(levels)
    params = torch.tensor([[[mean, log_scale]]], dtype=torch.float64)
    got = [float(pixel.log_prob(params, torch.tensor([[float(k)]], dtype=torch.float64))) for k in range(levels)]
    centres = 2 * np.arange(levels) / (levels - 1) - 1
    upper = np.append(centres[:-1] + 1 / (levels - 1), np.inf)
    lower = np.insert(centres[1:] - 1 / (levels - 1), 0, -np.inf)
    dist = scipy.stats.logistic(loc=mean, scale=math.exp(log_scale))
    assert np.allclose(got, np.log(dist.cdf(upper) - dist.cdf(lower)), atol=1e-12)


@pytest.mark.parametrize("pixel", [Bernoulli(), Categorical(5), DiscretizedLogistic(5)],
                         ids=lambda p: type(p).__name__)
def test_decoder_samples_follow_its_probabilities(pixel):
    params = torch.randn(1, 1, pixel.params_per_dim, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    draws = pixel.sample(params.expand(40_000, 1, -1), torch.Generator().manual_seed(4)).flatten()
    freq = torch.bincount(draws.long(), minlength=pixel.levels).double() / len(draws)
    probs = torch.stack([pixel.log_prob(params, torch.tensor([[float(v)]], dtype=torch.float64)).exp()
                         for v in range(pixel.levels)]).flatten()
    assert torch.allclose(freq, probs, atol=4 * math.sqrt(0.25 / len(draws)))


# --- MNIST-sized data, through the conformance kit -----------------------------------------------
# The bundled conformance run (tests/test_conformance_bundled.py) checks every model's contract on
# 4x4 images with 8 levels and on 2-D data. The family picks its networks and decoder by the data's
# size and levels, so the same checks run here on 28x28 images with 2 and 256 levels: the larger
# networks (200 hidden units, 50 latents) and the logistic-mixture decoder.

MNIST_SIZED = dataclasses.replace(DEFAULTS, binary_shape=(1, 28, 28), discrete_shape=(1, 28, 28),
                                  discrete_levels=256, num_train=64, batch_size=16, num_samples=8,
                                  eval_examples=16, train_steps=4)


def test_every_model_conforms_on_mnist_sized_images():
    report = check_plugin("vae", checks=["build", "sample", "determinism", "log_prob", "checkpoint", "one_step"],
                          settings=MNIST_SIZED)
    assert report.ok, "\n" + str(report)
    checked = {(r.model, r.data) for r in report.results if r.status == "passed"}
    assert {(m.name, kind) for m in hooks.MODELS for kind in ("binary", "discrete")} <= checked


DIGITS_LIKE = DatasetInfo("d", DataKind.DISCRETE, (1, 8, 8), 17, 10, Representation.LEVELS, 100,
                          label_counts=(10,) * 10)


def test_bad_input_shape_is_rejected():
    config = resolved_options(hooks.evalgen_family(), "vae")
    model = hooks.evalgen_build_model(model_name="vae", dataset=DIGITS_LIKE, config=config)
    with pytest.raises(ValueError, match=r"expected x of shape \(N, 1, 8, 8\)"):
        model.log_prob(torch.zeros(3, 64), 2)


def test_cvae_needs_labels():
    info = DatasetInfo("nolabels", DataKind.BINARY, (1, 28, 28), 2, None, Representation.LEVELS, 100)
    config = resolved_options(hooks.evalgen_family(), "cvae")
    with pytest.raises(ValueError, match="cvae needs class labels"):
        hooks.evalgen_build_model(model_name="cvae", dataset=info, config=config)
