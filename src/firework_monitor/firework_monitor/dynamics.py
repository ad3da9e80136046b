"""cVAE dynamics over world-model latents: encoder, decoder and prior are transformers.

Each time step's state embedding z_t (all cameras' latent maps, flattened) becomes one token. Given
the last T tokens:
  - prior      p(w | z_{t-T+1..t})           a Gaussian mixture over the cVAE latent w,
  - posterior  q(w | z_{t-T+1..t}, z_{t+1})  a Gaussian (training only),
  - decoder    z_{t+1} = z_t + s * f(z_{t-T+1..t}, w), s = per-dimension scale of z_{t+1} - z_t.
The residual is predicted in units of its own typical size: frame-to-frame changes of a mostly static
scene are ~100x smaller than the standardized latent, and an unscaled head learned ~identity.
Rollouts are autoregressive: each predicted z is tokenized and appended to the history. N futures
are N samples of w per step from the prior.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from firework_monitor.config import WorldModelConfig

LOG_2PI = math.log(2.0 * math.pi)
LOGVAR_MIN, LOGVAR_MAX = -8.0, 4.0


class ContextTransformer(nn.Module):
    """Tokens (B, S, d) -> the output at the last position (B, d)."""

    def __init__(self, cfg: WorldModelConfig, max_tokens: int) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.position = nn.Parameter(torch.zeros(1, max_tokens, d))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(d, cfg.transformer_heads, d * cfg.ffn_mult, cfg.dropout,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.transformer_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = tokens + self.position[:, : tokens.shape[1]]
        return self.norm(self.blocks(x)[:, -1])


def gaussian_log_prob(w: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return -0.5 * (((w - mean) ** 2) / logvar.exp() + logvar + LOG_2PI).sum(-1)


class CVAEDynamics(nn.Module):
    def __init__(self, cfg: WorldModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, wdim, k = cfg.embed_dim, cfg.cvae_latent_dim, cfg.prior_modes
        self.tokenize = nn.Sequential(nn.Linear(cfg.latent_dim, d), nn.LayerNorm(d))
        self.target_marker = nn.Parameter(torch.zeros(1, 1, d))   # marks z_{t+1} for the posterior
        self.w_to_token = nn.Linear(wdim, d)
        self.posterior = ContextTransformer(cfg, cfg.history + 1)
        self.prior = ContextTransformer(cfg, cfg.history)
        self.decoder = ContextTransformer(cfg, cfg.history + 1)
        self.posterior_head = nn.Linear(d, 2 * wdim)
        self.prior_head = nn.Linear(d, k * (2 * wdim + 1))
        self.delta_head = nn.Linear(d, cfg.latent_dim)
        nn.init.zeros_(self.delta_head.weight)  # start as "repeat the last latent"
        nn.init.zeros_(self.delta_head.bias)
        # RMS of z_{t+1} - z_t per dimension, tracked during training (saved with the weights).
        self.register_buffer("delta_scale", torch.ones(cfg.latent_dim))
        self.register_buffer("delta_scale_initialized", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update_delta_scale(self, deltas: torch.Tensor, momentum: float, floor: float) -> None:
        """deltas (n, D): observed z_{t+1} - z_t. Exponential moving RMS per dimension; dimensions
        that barely moved so far are floored at `floor` x the mean RMS, so the model can still
        predict change there."""
        if len(deltas) == 0:
            return
        ms = deltas.pow(2).mean(dim=0)
        if bool(self.delta_scale_initialized):
            ms = momentum * self.delta_scale.pow(2) + (1.0 - momentum) * ms
        rms = ms.sqrt()
        self.delta_scale.copy_(rms.clamp_min(floor * float(rms.mean()) + 1e-12))
        self.delta_scale_initialized.fill_(True)

    # --- distributions ----------------------------------------------------------------------
    def prior_params(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """history tokens (B, T, d) -> mixture logits (B, K), means (B, K, w), logvars (B, K, w)."""
        k, wdim = self.cfg.prior_modes, self.cfg.cvae_latent_dim
        out = self.prior_head(self.prior(history))
        logits = out[:, :k]
        mean, logvar = out[:, k:].reshape(-1, k, 2, wdim).unbind(2)
        return logits, mean, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)

    def prior_log_prob(self, w: torch.Tensor, params) -> torch.Tensor:
        logits, mean, logvar = params
        per_mode = gaussian_log_prob(w.unsqueeze(1), mean, logvar)          # (B, K)
        return torch.logsumexp(F.log_softmax(logits, -1) + per_mode, dim=-1)

    def sample_prior(self, history: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        logits, mean, logvar = self.prior_params(history)
        mode = torch.multinomial(F.softmax(logits, -1), 1, generator=generator).squeeze(1)
        idx = torch.arange(len(mode), device=mode.device)
        noise = torch.randn(mean.shape[0], mean.shape[2], generator=generator, device=mean.device)
        return mean[idx, mode] + (0.5 * logvar[idx, mode]).exp() * noise

    # --- one step ---------------------------------------------------------------------------
    def decode(self, history: torch.Tensor, last_z: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        tokens = torch.cat([history, self.w_to_token(w).unsqueeze(1)], dim=1)
        return last_z + self.delta_scale * self.delta_head(self.decoder(tokens))

    def train_step(self, history: torch.Tensor, last_z: torch.Tensor, target_z: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior sample -> predicted z_{t+1} and the single-sample KL(q || p) estimate (B,)."""
        target_token = self.tokenize(target_z).unsqueeze(1) + self.target_marker
        q = self.posterior_head(self.posterior(torch.cat([history, target_token], dim=1)))
        q_mean, q_logvar = q.chunk(2, dim=-1)
        q_logvar = q_logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)
        w = q_mean + (0.5 * q_logvar).exp() * torch.randn_like(q_mean)
        kl = gaussian_log_prob(w, q_mean, q_logvar) - self.prior_log_prob(w, self.prior_params(history))
        return self.decode(history, last_z, w), kl

    # --- rollouts ---------------------------------------------------------------------------
    def rollout(self, z_history: torch.Tensor, futures: int, horizon: int,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """z_history (B, T, D) -> predicted latents (B, N, L, D) and their tokens (B, N, L, d)."""
        b, t, dim = z_history.shape
        tokens = self.tokenize(z_history).repeat_interleave(futures, dim=0)   # (B*N, T, d)
        last_z = z_history[:, -1].repeat_interleave(futures, dim=0)
        zs, toks = [], []
        for _ in range(horizon):
            w = self.sample_prior(tokens, generator)
            last_z = self.decode(tokens, last_z, w)
            tok = self.tokenize(last_z)
            tokens = torch.cat([tokens[:, 1:], tok.unsqueeze(1)], dim=1)
            zs.append(last_z)
            toks.append(tok)
        z_out = torch.stack(zs, 1).reshape(b, futures, horizon, dim)
        tok_out = torch.stack(toks, 1).reshape(b, futures, horizon, -1)
        return z_out, tok_out
