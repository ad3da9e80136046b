"""The visual world model W = (UNet encoder, UNet decoder, cVAE transformer dynamics).

Shapes: frames are uint8 (..., cameras, H, W, 3) as recorded in bags; z is the flattened state
embedding (..., latent_dim) of all cameras; tokens are the dynamics' (..., embed_dim) projection of z.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from firework_monitor.config import WorldModelConfig, WorldModelTrainConfig
from firework_monitor.dynamics import CVAEDynamics
from firework_monitor.unet import UNetDecoder, UNetEncoder


class WorldModel(nn.Module):
    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = UNetEncoder(cfg)
        self.decoder = UNetDecoder(cfg)
        self.dynamics = CVAEDynamics(cfg)

    # --- frames <-> latents -----------------------------------------------------------------
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (..., C, H, W, 3) -> z (..., latent_dim)."""
        lead = frames.shape[:-4]
        c, h, w = frames.shape[-4:-1]
        x = frames.reshape(-1, h, w, 3).permute(0, 3, 1, 2).float().div_(255.0)
        lat = self.encoder(x)                                   # (B*C, lc, ls, ls)
        return lat.reshape(*lead, -1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., latent_dim) -> float images (..., C, 3, H, W) in [0, 1]."""
        cfg = self.cfg
        lead = z.shape[:-1]
        lat = z.reshape(-1, cfg.latent_channels, cfg.latent_size, cfg.latent_size)
        img = self.decoder(lat)
        return img.reshape(*lead, cfg.num_cameras, 3, cfg.image_size, cfg.image_size)

    # --- prediction -------------------------------------------------------------------------
    @torch.no_grad()
    def imagine(self, z_history: torch.Tensor, futures: int | None = None, horizon: int | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """z_history (B, T, D) -> N sampled futures (B, N, L, D) and their tokens (B, N, L, d)."""
        return self.dynamics.rollout(z_history, futures or self.cfg.futures, horizon or self.cfg.horizon,
                                     generator)

    # --- training ---------------------------------------------------------------------------
    def loss(self, chunks: torch.Tensor, train_cfg: WorldModelTrainConfig,
             valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """chunks: uint8 (B, S, C, H, W, 3), S >= history + horizon; valid: bool (B, S), False for
        padding frames (default: all real). Joint loss of all three parts.

        The latent term is relative to "repeat the last latent" over real target frames only:
        sum of squared prediction errors / sum of squared repeat-last errors (floored). Absolute
        latent errors are tiny next to the image loss (most of a scene does not move between two
        frames), so an absolute loss taught the dynamics ~identity.

        The dynamics sees the encoder's latents with gradients stopped: it learns to predict the
        latent space the reconstruction defines, and cannot lower its loss by making the encoder
        ignore what moves (a static latent is trivially predictable)."""
        cfg = self.cfg
        b, s = chunks.shape[:2]
        t, horizon = cfg.history, cfg.horizon
        if s < t + horizon:
            raise ValueError(f"chunk length {s} < history + horizon = {t + horizon}")
        if valid is None:
            valid = torch.ones(b, s, dtype=torch.bool)
        z = self.encode(chunks)                                             # (B, S, D)

        # Image reconstruction on a random subset of frames per chunk (padding repeats a real frame,
        # so it is a valid reconstruction target).
        r = min(train_cfg.recon_frames_per_chunk, s)
        pick = torch.rand(b, s).argsort(dim=1)[:, :r]
        z_pick = torch.gather(z, 1, pick.unsqueeze(-1).expand(-1, -1, z.shape[-1]))
        frames_pick = torch.gather(chunks, 1, pick.reshape(b, r, 1, 1, 1, 1).expand(
            -1, -1, *chunks.shape[2:]))
        target = frames_pick.permute(0, 1, 2, 5, 3, 4).float() / 255.0
        recon = F.mse_loss(self.decode(z_pick), target)

        zd = z.detach()
        if self.training:
            real_pairs = (valid[:, 1:] & valid[:, :-1]).reshape(-1)
            self.dynamics.update_delta_scale((zd[:, 1:] - zd[:, :-1]).reshape(-1, zd.shape[-1])[real_pairs],
                                             train_cfg.delta_scale_momentum, train_cfg.delta_scale_floor)

        # L-step autoregressive latent prediction over every window in every chunk.
        windows = zd.unfold(1, t + horizon, 1).permute(0, 1, 3, 2).reshape(-1, t + horizon, zd.shape[-1])
        target_valid = valid.unfold(1, t + horizon, 1).reshape(-1, t + horizon)[:, t:].float()  # (W, L)
        targets = windows[:, t:]
        history = self.dynamics.tokenize(windows[:, :t])
        last_z = windows[:, t - 1]
        repeat_last = last_z
        pred_sq, repeat_sq, kl = 0.0, 0.0, 0.0
        for k in range(horizon):
            pred, step_kl = self.dynamics.train_step(history, last_z, targets[:, k])
            w = target_valid[:, k]
            pred_sq = pred_sq + (((pred - targets[:, k]) ** 2).mean(-1) * w).sum()
            repeat_sq = repeat_sq + (((repeat_last - targets[:, k]) ** 2).mean(-1) * w).sum()
            kl = kl + (step_kl * w).sum()
            last_z = pred
            history = torch.cat([history[:, 1:], self.dynamics.tokenize(pred).unsqueeze(1)], dim=1)
        n_valid = target_valid.sum().clamp_min(1.0)
        latent_mse, repeat_mse, kl = pred_sq / n_valid, repeat_sq / n_valid, kl / n_valid
        latent = latent_mse / repeat_mse.clamp_min(train_cfg.latent_baseline_floor)
        total = (train_cfg.recon_weight * recon + train_cfg.latent_weight * latent
                 + train_cfg.kl_weight * kl)
        return {"loss": total, "recon": recon.detach(), "latent": latent.detach(), "kl": kl.detach(),
                "latent_mse": latent_mse.detach(), "repeat_last_mse": repeat_mse.detach()}
