"""What NADE and MADE share: the per-dimension output distribution over the levels (Bernoulli
logits for binary data, categorical logits otherwise) and inverse-CDF sampling from uniforms."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class LevelsModel(nn.Module):
    """Base for models of D = prod(shape) dimensions with ``levels`` values each."""

    def __init__(self, shape: tuple[int, ...], levels: int) -> None:
        super().__init__()
        self.shape, self.levels = tuple(int(s) for s in shape), int(levels)

    @property
    def num_dims(self) -> int:
        return math.prod(self.shape)

    @property
    def params_per_dim(self) -> int:
        """P: 1 Bernoulli logit for binary data, L categorical logits otherwise."""
        return 1 if self.levels == 2 else self.levels


#: Examples per pass when autograd records nothing (evaluation) in the models whose intermediates
#: grow with N x D (NADE's (N, D, H) pre-activations, the PixelCNN's feature maps): those of a few
#: dozen MNIST images stay in cache, where the harness's 512 at once (~1 GB for NADE) ran 2-4x
#: slower on 2 CPU cores. (MADE's are (N, H): it is fastest at the full batch.)
EVAL_CHUNK = 32


def in_eval_chunks(log_prob: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                   chunk: int = EVAL_CHUNK) -> torch.Tensor:
    """``log_prob(x)`` (N,), over chunks of ``chunk`` examples when no graph is recorded (the same
    values: every example is scored on its own)."""
    if torch.is_grad_enabled() or x.shape[0] <= chunk:
        return log_prob(x)
    return torch.cat([log_prob(part) for part in x.split(chunk)])


def conditional_log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log p(x_d | x_<d) per dimension (N, D) from ``logits`` (N, D, P) and levels ``x`` (N, D):
    a Bernoulli when P = 1, a categorical over the P levels otherwise."""
    if logits.shape[-1] == 1:
        return -F.binary_cross_entropy_with_logits(logits[..., 0], x.to(logits.dtype), reduction="none")
    logp = torch.log_softmax(logits, dim=-1)
    return logp.gather(-1, x.long().unsqueeze(-1)).squeeze(-1)


def draw(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """One level per row by inverse CDF: ``logits`` (n, P), uniforms ``u`` (n,) in [0, 1) ->
    levels (n,) float32. Taking the uniforms from the caller keeps every random number on the
    generator's device whatever the module's device is."""
    if logits.shape[-1] == 1:
        return (u < torch.sigmoid(logits[:, 0].double())).float()
    cdf = torch.softmax(logits.double(), dim=-1).cumsum(-1)
    return (u.double().unsqueeze(-1) >= cdf).sum(-1).clamp(max=logits.shape[-1] - 1).float()


def uniforms(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Uniforms drawn from ``generator`` (on its own device), moved to ``device``."""
    return torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64).to(device)
