"""The network of evalgen's domain classifiers (the feature extractors of small image datasets);
`evalgen.metrics.extractors` trains, caches, verifies and loads them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DomainClassifier"]


class DomainClassifier(nn.Module):
    """The classifier of a `Recipe`; ``forward`` takes images in [0, 1] and returns
    (logits, embedding), the embedding being the hidden layer before its ReLU, standardized."""

    def __init__(self, size: int, channels: int, num_classes: int, c1: int, c2: int, hidden: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, c1, 5, stride=2, padding=2)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(c2)
        reduced = ((size + 1) // 2 + 1) // 2
        self.fc1 = nn.Linear(c2 * reduced * reduced, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)
        # Fixed after training: the embedding's mean and std over the training set (see `standardize`).
        self.register_buffer("emb_mean", torch.zeros(hidden))
        self.register_buffer("emb_scale", torch.ones(hidden))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        hidden = self.fc1(h.flatten(1))
        return self.fc2(F.relu(hidden)), (hidden - self.emb_mean) / self.emb_scale

    @torch.no_grad()
    def standardize(self, x: torch.Tensor, batch_size: int = 1000) -> None:
        """Make the embedding zero-mean, unit-variance per unit on ``x`` (training images, float64)."""
        self.emb_mean.zero_()
        self.emb_scale.fill_(1)
        model = self.double().eval()
        emb = torch.cat([model(x[i:i + batch_size].double())[1] for i in range(0, len(x), batch_size)])
        self.emb_mean.copy_(emb.mean(0))
        self.emb_scale.copy_(emb.std(0).clamp_min(1e-6))
        self.float()
