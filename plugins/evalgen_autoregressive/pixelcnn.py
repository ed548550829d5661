"""PixelCNN: the original masked-convolution model (van den Oord, Kalchbrenner & Kavukcuoglu 2016,
"Pixel Recurrent Neural Networks") and the gated PixelCNN (van den Oord et al. 2016, "Conditional
Image Generation with PixelCNN Decoders"), both with exact likelihoods.

The model factorizes p(x) = prod_i p(x_i | x_<i) over the pixels in raster order (row by row,
left to right); ``log_prob`` is that sum, exact, in nats of the discrete data.

Shapes: ``x`` is (N, C, H, W) integer levels 0..L-1 stored as float32; ``logits(x)`` is
(N, D, P) with D = C*H*W pixels in raster order and P numbers per pixel; log-probabilities are (N,).

Choices:

* Single-channel images only (C = 1; all our datasets are). Colour images would need the channel
  dependency (masks A/B over channel groups, R -> G -> B); rather than half-supporting it the
  constructor raises a ValueError for C > 1.
* Input scaling: the network sees ``x / (L - 1)``, in [0, 1]. Zero padding at the image borders
  therefore reads as level 0; it is a constant, so it carries no information about the pixels.
* All convolutions are 3 wide. The gated model (``gated=True``) has a vertical stack (a (2, 3)
  convolution over the current and previous row, its output shifted down one row before it feeds
  the horizontal stack, so the horizontal stack at row i only sees rows < i from it) and a
  horizontal stack ((1, 2) convolution: the current pixel and the one to its left; the first
  layer, "mask A", sees only the pixel to the left). Activations are tanh(.) * sigmoid(.) gates;
  the horizontal stack has residual connections from its second layer on. After ``layers``
  layers a pixel sees every earlier pixel of the ``layers + 1`` rows above within ``layers``
  columns either side, plus ``layers`` pixels to its left: no blind spot. The ungated model
  (``gated=False``) is a stack of masked 3x3 convolutions (type A first, excluding the current
  pixel, then type B) with ReLUs and residual connections; its receptive field has the blind
  spot: pixel (i - r, j + c) is seen only if c <= r, so (i - 1, j + 2) and further right are not.
* Outputs: ``"categorical"`` gives L logits per pixel (an exact free mass function);
  ``"logistic_mixture"`` a mixture of ``mixtures`` discretized logistics over the L levels
  (Salimans et al. 2017, PixelCNN++; the edge bins extend to -inf and +inf). Both are the shared
  `evalgen` pixel distributions, so the NLL is in the same units as every other family's.
* Sampling is H*W sequential network passes, batched over the n samples; this is inherent to
  PixelCNN. Each pass only runs on the rows the current pixel can see (``layers + 1`` rows above
  it, the receptive field, plus its own row; zero padding at the top of that window reaches at
  most ``layers`` rows down, so the current row's outputs are exact), and the 1x1 output head
  only on the current pixel. In the gated model the vertical stack, which only sees rows above,
  runs once per row, and each pixel's pass is the horizontal stack over the ``layers`` pixels to
  its left; the ungated model runs every layer on the window's rows for every pixel. This is
  exact (tested against the full pass), not Fast PixelCNN's (Ramachandran et al. 2017) caching.
  Each pixel is drawn from its output distribution with the given generator, which must live on
  the module's device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from evalgen import Categorical, LogisticMixture

from .common import in_eval_chunks

OUTPUTS = ("categorical", "logistic_mixture")


def _down_shift(t: torch.Tensor) -> torch.Tensor:
    """Shift a (N, C, H, W) map down one row, zeros entering at the top."""
    return F.pad(t, (0, 0, 1, 0))[:, :, :-1, :]


class MaskedConv2d(nn.Conv2d):
    """A k x k convolution masked to the pixels above and to the left of the centre: type "A"
    excludes the centre (the current pixel), type "B" includes it. Single channel group (C = 1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, mask_type: str) -> None:
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask type must be 'A' or 'B', got {mask_type!r}")
        super().__init__(in_channels, out_channels, kernel, padding=kernel // 2)
        mask = torch.ones(kernel, kernel)
        centre = kernel // 2
        mask[centre, centre + (mask_type == "B"):] = 0
        mask[centre + 1:] = 0
        self.register_buffer("mask", mask[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class GatedLayer(nn.Module):
    """One gated PixelCNN layer: (v, h) -> (v', h').

    Vertical: a (2, 3) convolution over rows i-1..i (columns j-1..j+1), 2p channels, gated to p.
    Its pre-activation, shifted down one row (rows i-2..i-1 only) and mixed by a 1x1 convolution,
    joins the horizontal pre-activation: a (1, 2) convolution over columns j-1..j (``first``:
    column j-1 only, mask A). The horizontal output is the gate through a 1x1 convolution, plus
    the input (residual) except in the first layer.
    """

    def __init__(self, in_channels: int, channels: int, first: bool) -> None:
        super().__init__()
        self.first = first
        self.vertical = nn.Conv2d(in_channels, 2 * channels, (2, 3))
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal = nn.Conv2d(in_channels, 2 * channels, (1, 1 if first else 2))
        self.horizontal_out = nn.Conv2d(channels, channels, 1)

    @staticmethod
    def _gate(t: torch.Tensor) -> torch.Tensor:
        a, b = t.chunk(2, dim=1)
        return torch.tanh(a) * torch.sigmoid(b)

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        v_out, v_pre = self.vertical_stack(v)
        return v_out, self.horizontal_stack(h, _down_shift(v_pre))

    def vertical_stack(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, c, H, W) -> the gated output (N, p, H, W) and the pre-activation (N, 2p, H, W)
        whose row i covers rows i-1..i, columns j-1..j+1."""
        v_pre = self.vertical(F.pad(v, (1, 1, 1, 0)))
        return self._gate(v_pre), v_pre

    def horizontal_stack(self, h: torch.Tensor, v_pre_above: torch.Tensor) -> torch.Tensor:
        """(N, c, H, W) and the vertical pre-activation of the row above each row (N, 2p, H, W)
        -> (N, p, H, W)."""
        width = h.shape[-1]
        if self.first:  # column j-1 only: pad one on the left, drop the last column
            h_pre = self.horizontal(F.pad(h, (1, 0)))[..., :width]
        else:  # columns j-1..j
            h_pre = self.horizontal(F.pad(h, (1, 0)))
        h_pre = h_pre + self.vertical_to_horizontal(v_pre_above)
        h_out = self.horizontal_out(self._gate(h_pre))
        return h_out if self.first else h + h_out


class PixelCNN(nn.Module):
    """An autoregressive image model with exact likelihoods over integer levels.

    Args:
        shape: (C, H, W) of one image; C must be 1.
        levels: L, values per pixel (>= 2).
        channels: hidden feature maps per stack.
        layers: gated layers (``gated=True``) or masked convolutions (``gated=False``), the first
            of type A; the receptive field grows by one pixel per layer.
        output: "categorical" (L logits per pixel) or "logistic_mixture".
        mixtures: components of the logistic mixture (``output="logistic_mixture"``).
        gated: the gated PixelCNN (vertical + horizontal stacks, no blind spot) or the original
            masked-convolution PixelCNN (with the blind spot).
    """

    def __init__(self, shape: tuple[int, int, int], levels: int, channels: int = 32, layers: int = 5,
                 output: str = "categorical", mixtures: int = 5, gated: bool = True) -> None:
        super().__init__()
        if len(shape) != 3:
            raise ValueError(f"shape must be (C, H, W), got {tuple(shape)}")
        if shape[0] != 1:
            raise ValueError(f"PixelCNN supports single-channel images only (C = 1), got C = {shape[0]}; "
                             "colour images would need channel-group masks")
        if levels < 2:
            raise ValueError(f"a PixelCNN needs at least 2 levels, got {levels}")
        if layers < 1 or channels < 1:
            raise ValueError(f"layers and channels must be >= 1, got {layers} and {channels}")
        if output not in OUTPUTS:
            raise ValueError(f"unknown output {output!r}; choose from {list(OUTPUTS)}")
        if output == "logistic_mixture" and mixtures < 1:
            raise ValueError(f"mixtures must be >= 1, got {mixtures}")
        self.shape, self.levels = tuple(int(s) for s in shape), int(levels)
        self.channels = int(channels)
        self.gated, self.output = bool(gated), output
        self.pixel = Categorical(levels) if output == "categorical" else LogisticMixture(levels, mixtures)
        params = self.pixel.params_per_dim
        if gated:
            self.layers = nn.ModuleList(
                [GatedLayer(1 if i == 0 else channels, channels, first=(i == 0)) for i in range(layers)])
        else:
            self.layers = nn.ModuleList(
                [MaskedConv2d(1 if i == 0 else channels, channels, 3, "A" if i == 0 else "B")
                 for i in range(layers)])
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(),
                                  nn.Conv2d(channels, params, 1))

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        inputs = x / (self.levels - 1)
        if self.gated:
            v = h = inputs
            for layer in self.layers:
                v, h = layer(v, h)
            return h
        h = inputs
        for i, layer in enumerate(self.layers):
            out = torch.relu(layer(h)) if i < len(self.layers) - 1 else layer(h)
            h = out if i == 0 else h + out
        return h

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The output parameters of every pixel's conditional p(x_i | x_<i): (N, D, P), D = C*H*W
        in raster order, P = L (categorical) or 3 * mixtures (logistic mixture)."""
        if x.dim() != 4 or tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"expected images of shape (N, {', '.join(map(str, self.shape))}), "
                             f"got {tuple(x.shape)}")
        out = self.head(self._features(x))  # (N, P, H, W)
        return out.flatten(2).transpose(1, 2)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) in nats: (N,). Without a graph to keep, in passes of `EVAL_CHUNK` images."""
        return in_eval_chunks(lambda part: self.pixel.log_prob(self.logits(part), part.flatten(1)), x)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """The mean negative log-likelihood over the batch (a scalar, nats per image)."""
        return -self.log_prob(x).mean()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n images (n, C, H, W) of float levels, drawn pixel by pixel in raster order: H*W network
        passes batched over the n samples; randomness only from ``generator`` (on the module's
        device)."""
        device = next(self.parameters()).device
        dtype = next(self.parameters()).dtype
        _, height, width = self.shape
        x = torch.zeros((n, *self.shape), device=device, dtype=dtype)
        for i in range(height):
            context = self._row_context(x, i)
            for j in range(width):
                params = self._pixel_params(x, context, i, j)
                x[:, 0, i, j] = self.pixel.sample(params, generator)[:, 0]
        return x

    def pixel_params(self, x: torch.Tensor, i: int, j: int) -> torch.Tensor:
        """The output parameters of pixel (i, j)'s conditional, (N, 1, P): equal to
        ``logits(x)[:, i * W + j, None]``, computed from the pixels it can see only."""
        return self._pixel_params(x, self._row_context(x, i), i, j)

    @property
    def rows_above(self) -> int:
        """How many rows above a pixel its output can depend on (the receptive field's height)."""
        return len(self.layers) + 1

    def _row_context(self, x: torch.Tensor, i: int) -> list[torch.Tensor] | None:
        """Gated model: what row i's horizontal stack takes from the rows above, per layer: the
        vertical pre-activation of row i-1, (N, 2p, 1, W), computed from rows i-1-layers..i-1
        only (zero padding at the top of that window reaches ``layers`` rows down, not row i-1).
        None for the ungated model, which has no such split."""
        if not self.gated:
            return None
        if i == 0:
            width = self.shape[-1]
            rows = [torch.zeros(x.shape[0], 2 * self.channels, 1, width, device=x.device, dtype=x.dtype)]
            return rows * len(self.layers)
        v = x[:, :, max(0, i - self.rows_above):i] / (self.levels - 1)
        context = []
        for layer in self.layers:
            v, v_pre = layer.vertical_stack(v)
            context.append(v_pre[:, :, -1:])
        return context

    def _pixel_params(self, x: torch.Tensor, context: list[torch.Tensor] | None, i: int, j: int) -> torch.Tensor:
        if context is None:  # ungated: the full-width pass over the receptive field's rows
            features = self._features(x[:, :, max(0, i - self.rows_above):i + 1])
            return self.head(features[:, :, -1, j, None, None]).flatten(1)[:, None]
        # gated: the horizontal stack reaches `layers` pixels left; its zero padding at the
        # window's left edge reaches `layers - 1` columns right, so column j is exact
        left = max(0, j - len(self.layers))
        h = x[:, :, i:i + 1, left:j + 1] / (self.levels - 1)
        for layer, above in zip(self.layers, context):
            h = layer.horizontal_stack(h, above[..., left:j + 1])
        return self.head(h[..., -1:]).flatten(1)[:, None]
