"""UNet-style image encoder and decoder (one pair shared by all cameras).

The encoder is the contracting half of a UNet (residual conv blocks, stride-2 downsampling), the
decoder its mirror. There are deliberately no skip connections from encoder to decoder: the decoder
must reconstruct the image from the latent alone, otherwise the latent need not carry the scene and
the world model built on it would have nothing to predict.
"""
from __future__ import annotations

import torch
from torch import nn

from firework_monitor.config import WorldModelConfig


def _group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(8, channels), num_channels=channels)


class ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _group_norm(channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
            _group_norm(channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class UNetEncoder(nn.Module):
    """(B, 3, H, W) float in [0, 1] -> (B, latent_channels, H/f, W/f)."""

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        ch = cfg.unet_channels
        layers: list[nn.Module] = [nn.Conv2d(3, ch[0], 3, stride=cfg.stem_stride, padding=1),
                                   ResBlock(ch[0])]
        for c_in, c_out in zip(ch[:-1], ch[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), ResBlock(c_out)]
        layers += [_group_norm(ch[-1]), nn.SiLU(), nn.Conv2d(ch[-1], cfg.latent_channels, 1),
                   # Standardize each latent map: the latent keeps a fixed scale, so the dynamics'
                   # prediction loss cannot be lowered by shrinking the latent space.
                   nn.GroupNorm(1, cfg.latent_channels, affine=False)]
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images * 2.0 - 1.0)


class UNetDecoder(nn.Module):
    """(B, latent_channels, h, w) -> (B, 3, H, W) in [0, 1]."""

    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        ch = list(reversed(cfg.unet_channels))
        layers: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, ch[0], 3, padding=1), ResBlock(ch[0])]
        for c_in, c_out in zip(ch[:-1], ch[1:]):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1),
                       ResBlock(c_out)]
        if cfg.stem_stride == 2:
            layers += [nn.Upsample(scale_factor=2, mode="nearest")]
        layers += [_group_norm(ch[-1]), nn.SiLU(), nn.Conv2d(ch[-1], 3, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(latents))
