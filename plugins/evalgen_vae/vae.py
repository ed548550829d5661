"""The variational autoencoder (Kingma & Welling 2014), its importance-weighted objective
(Burda, Grosse & Salakhutdinov 2016) and the conditional VAE over class labels.

Shapes: ``x`` is (N, C, H, W) integer levels stored as floats; latents are (K, N, latent) for K
samples per example; log-weights, bounds and ELBOs are (K, N) or (N,) nats.

The generative model is p(z) = N(0, I), p(x|z) a pixel distribution from `likelihoods`; the
conditional model adds a label y with p(y) the training-label frequencies and p(x|z,y). Its
``log_prob`` bounds the marginal log p(x) with the joint proposal q(y|x) q(z|x,y): the
classifier q(y|x) is trained on the labels alongside the ELBO of log p(x|y).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from evalgen import importance_weighted_bound, log_mean_exp

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
#: Elements (samples x examples x decoder outputs) one chunk of a bound may hold: ~64 MB float32.
CHUNK_ELEMENTS = 1 << 24


def _standard_normal_log_prob(eps: torch.Tensor) -> torch.Tensor:
    return (-0.5 * eps.square() - HALF_LOG_2PI).sum(-1)


class VAE(nn.Module):
    """A Gaussian-latent VAE on images of integer levels.

    Args:
        shape: (C, H, W) of one image.
        levels: values per pixel (2 for binary data); None for continuous data.
        encoder: images in [-1, 1] [+ one-hot label] -> (mean, log_std), each (N, latent).
        decoder: latents (..., N, latent) [+ label] -> pixel parameters (..., N, D, P).
        pixel: the pixel distribution (`likelihoods.Bernoulli`, ...).
        latent: dimension of z.
        train_samples: k of the training objective: 1 is the ELBO (with the analytic KL), k > 1
            the IWAE bound.
        label_counts: for the conditional VAE, the training-label counts (its p(y)); None for
            an unconditional VAE.
        classifier: for the conditional VAE, images in [-1, 1] -> label logits (q(y|x)).
        kl_weight: beta, the weight of the KL term in the ELBO objective (``train_samples=1``);
            1 is the ELBO itself. It shapes training only: ``log_prob`` is always the IWAE bound.
    """

    def __init__(self, shape: tuple[int, ...], levels: int, encoder: nn.Module, decoder: nn.Module, pixel,
                 latent: int, train_samples: int = 1, label_counts: tuple[int, ...] | None = None,
                 classifier: nn.Module | None = None, kl_weight: float = 1.0) -> None:
        super().__init__()
        if train_samples < 1:
            raise ValueError(f"train_samples must be >= 1, got {train_samples}")
        if (label_counts is None) != (classifier is None):
            raise ValueError("a conditional VAE needs both label_counts and a classifier")
        self.shape, self.levels, self.latent = tuple(shape), levels, int(latent)
        self.encoder, self.decoder, self.pixel = encoder, decoder, pixel
        self.train_samples = int(train_samples)
        self.kl_weight = float(kl_weight)
        self.classifier = classifier
        self.num_classes = 0 if label_counts is None else len(label_counts)
        if label_counts is not None:
            counts = torch.tensor(label_counts, dtype=torch.float32)
            self.register_buffer("log_label_prior", torch.log(counts / counts.sum()))

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def num_dims(self) -> int:
        return math.prod(self.shape)

    def _scaled(self, x: torch.Tensor) -> torch.Tensor:
        """Network input: levels mapped to [-1, 1]; continuous data as it is."""
        return x if self.levels is None else x * (2.0 / (self.levels - 1)) - 1.0

    def _one_hot(self, y: torch.Tensor) -> torch.Tensor:
        return F.one_hot(y.long(), self.num_classes).to(self.log_label_prior.dtype)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"expected x of shape (N, {', '.join(map(str, self.shape))}), got {tuple(x.shape)}")
        return x

    # -- the unconditional bound and ELBO ---------------------------------------------------
    def _posterior(self, x: torch.Tensor, label: torch.Tensor | None = None):
        return self.encoder(self._scaled(x), label)

    def _log_weights_given(self, x_flat: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor, k: int,
                           label: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x, z | y) - log q(z | x, y) for k fresh z per example: (k, N)."""
        eps = torch.randn(k, *mean.shape, device=mean.device, dtype=mean.dtype)
        z = mean + torch.exp(log_std) * eps
        log_q = _standard_normal_log_prob(eps) - log_std.sum(-1)
        return _standard_normal_log_prob(z) + self.pixel.log_prob(self.decoder(z, label), x_flat) - log_q

    def log_weights(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """(k, N) log importance weights of k fresh samples from the proposal, per example."""
        self._check(x)
        if self.conditional:
            return self._conditional_log_weights(x, k, self._classifier_log_probs(x))
        mean, log_std = self._posterior(x)
        return self._log_weights_given(x.flatten(1), mean, log_std, k)

    def elbo(self, x: torch.Tensor, y: torch.Tensor | None = None, kl_weight: float = 1.0) -> torch.Tensor:
        """(N,) ELBO of log p(x) (of log p(x | y) when ``y`` is given), analytic KL, one z sample.
        ``kl_weight`` != 1 gives the beta-weighted training objective, which is not a bound."""
        label = None if y is None else self._one_hot(y)
        mean, log_std = self._posterior(self._check(x), label)
        z = mean + torch.exp(log_std) * torch.randn_like(mean)
        kl = 0.5 * (mean.square() + torch.exp(2 * log_std) - 1.0 - 2 * log_std).sum(-1)
        return self.pixel.log_prob(self.decoder(z, label), x.flatten(1)) - kl_weight * kl

    # -- the conditional VAE -------------------------------------------------------------
    def _classifier_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.classifier(self._scaled(x).flatten(1)), dim=-1)

    def _conditional_log_weights(self, x: torch.Tensor, k: int, log_q_y: torch.Tensor) -> torch.Tensor:
        """Joint proposal y ~ q(y|x), z ~ q(z|x,y): log p(y) + log p(x,z|y) - log q(y|x) - log q(z|x,y)."""
        n = x.shape[0]
        y = torch.multinomial(log_q_y.exp(), k, replacement=True).T  # (k, N)
        label = self._one_hot(y)  # (k, N, C)
        xs = x.unsqueeze(0).expand(k, *x.shape).reshape(k * n, *x.shape[1:])
        mean, log_std = self._posterior(xs, label.reshape(k * n, -1))
        eps = torch.randn_like(mean)
        z = (mean + torch.exp(log_std) * eps).reshape(k, n, -1)
        log_q_z = (_standard_normal_log_prob(eps) - log_std.sum(-1)).reshape(k, n)
        log_px = self.pixel.log_prob(self.decoder(z, label), x.flatten(1))
        log_p_y = self.log_label_prior[y]
        return log_p_y + _standard_normal_log_prob(z) + log_px - log_q_z - log_q_y.gather(1, y.T).T

    # -- what the hooks call -------------------------------------------------------------
    def loss(self, x: torch.Tensor, y: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Training loss (first entry) and its parts, each a scalar."""
        if not self.conditional:
            if self.train_samples == 1:
                bound = self.elbo(x)
            else:
                bound = log_mean_exp(self.log_weights(x, self.train_samples), dim=0)
            return {"loss": -bound.mean()}
        if y is None:
            raise ValueError("the conditional VAE trains on labelled data; this dataset has no labels")
        label = self._one_hot(y)
        if self.train_samples == 1:
            bound = self.elbo(x, y, self.kl_weight)
        else:
            mean, log_std = self._posterior(x, label)
            bound = log_mean_exp(self._log_weights_given(x.flatten(1), mean, log_std, self.train_samples, label), 0)
        log_p_y = self.log_label_prior[y.long()]
        classify = F.cross_entropy(self.classifier(self._scaled(x).flatten(1)), y.long())
        negative_joint = -(bound + log_p_y).mean()
        return {"loss": negative_joint + classify, "nll_xy": negative_joint.detach(), "ce": classify.detach()}

    def _chunk(self, n: int) -> int:
        return max(1, CHUNK_ELEMENTS // max(1, n * self.num_dims * self.pixel.params_per_dim))

    def log_prob(self, x: torch.Tensor, num_samples: int) -> torch.Tensor:
        """(N,) the IWAE bound on log p(x) with K = ``num_samples`` (K = 1: an ELBO estimate)."""
        self._check(x)
        x_flat = x.flatten(1)
        if self.conditional:
            log_q_y = self._classifier_log_probs(x)
            fn = lambda x_, k: self._conditional_log_weights(x_, k, log_q_y)  # noqa: E731
        else:
            mean, log_std = self._posterior(x)  # once: every chunk reuses q(z|x)
            fn = lambda x_, k: self._log_weights_given(x_flat, mean, log_std, k)  # noqa: E731
        return importance_weighted_bound(fn, x, num_samples, chunk_size=self._chunk(x.shape[0]))

    @torch.no_grad()
    def sample(self, num_samples: int, generator: torch.Generator | None = None,
               labels: torch.Tensor | None = None) -> torch.Tensor:
        """(num_samples, C, H, W) integer levels as floats. For the conditional VAE ``labels``
        (num_samples,) chooses the classes; by default they are drawn from p(y)."""
        device = next(self.parameters()).device
        label = None
        if self.conditional:
            if labels is None:
                labels = torch.multinomial(self.log_label_prior.exp(), num_samples, replacement=True,
                                           generator=generator)
            label = self._one_hot(labels.to(device))
        elif labels is not None:
            raise ValueError("labels= is only for the conditional VAE")
        z = torch.randn(num_samples, self.latent, generator=generator, device=device)
        x = self.pixel.sample(self.decoder(z, label), generator)
        return x.reshape(num_samples, *self.shape)
