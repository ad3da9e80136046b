"""The multi-task BC-Transformer (robomimic style).

Per frame: each camera image -> its own ResNet-style conv trunk -> spatial softmax keypoints ->
camera feature; with the normalized proprioception and the projected language-goal vector they make
one token. A causal transformer over the last `context` tokens predicts the action distribution at
every position (GMM or deterministic), in normalized action units.

Shapes: frames uint8 (B, T, cameras, H, W, 3) as recorded in bags; proprio (B, T, 9) raw;
task (B,) row index into the goal table; actions (B, T, k, 7) raw: each frame's chunk of the
next k executed actions (k = action_chunk).
The dataset statistics (proprio/action mean and std) and the goal vectors are buffers, so they live
in the checkpoint with the weights.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from firework_common.schema import ACTION_DIM, PROPRIO_DIM
from firework_policy.config import PolicyModelConfig
from firework_policy.goals import GOAL_DIM

STD_FLOOR = 1e-2   # normalization never divides by less (constant action or proprio dimensions)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = nn.GroupNorm(_groups(cout), cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.skip = (nn.Identity() if stride == 1 and cin == cout else
                     nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.GroupNorm(_groups(cout), cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(y)) + self.skip(x))


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


class SpatialSoftmax(nn.Module):
    """Feature map -> K keypoints (expected x, y of a softmax over the map), robomimic's SpatialSoftmax."""

    def __init__(self, channels: int, keypoints: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, keypoints, 1)
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        logits = self.proj(x).flatten(2) / self.log_temperature.exp()          # (B, K, H*W)
        attn = logits.softmax(dim=-1)
        ys = torch.linspace(-1, 1, h, device=x.device, dtype=x.dtype)
        xs = torch.linspace(-1, 1, w, device=x.device, dtype=x.dtype)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        ex = (attn * gx.reshape(1, 1, -1)).sum(-1)
        ey = (attn * gy.reshape(1, 1, -1)).sum(-1)
        return torch.cat([ex, ey], dim=-1)                                     # (B, 2K)


class CameraEncoder(nn.Module):
    """ResNet-style trunk + spatial softmax + linear: float image (N, 3, H, W) in [0, 1] -> (N, F)."""

    def __init__(self, cfg: PolicyModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, cfg.stem_channels, cfg.stem_kernel, cfg.stem_stride, cfg.stem_kernel // 2, bias=False),
            nn.GroupNorm(_groups(cfg.stem_channels), cfg.stem_channels), nn.ReLU()]
        if cfg.stem_pool:
            layers.append(nn.MaxPool2d(3, 2, 1))
        cin = cfg.stem_channels
        for i, cout in enumerate(cfg.stage_channels):
            for j in range(cfg.blocks_per_stage):
                layers.append(BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.trunk = nn.Sequential(*layers)
        self.keypoints = SpatialSoftmax(cin, cfg.keypoints)
        self.out = nn.Linear(2 * cfg.keypoints, cfg.camera_feature_dim)
        # Images arrive as HWC views (channels-last strides): keep the convolutions channels-last too.
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.keypoints(self.trunk(x - 0.5)))


def random_shift(frames: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """uint8 (B, T, C, H, W, 3): each (window, camera) shifted by up to `pad` pixels, the same shift
    for every frame of the window (edges replicated)."""
    b, t, c, h, w, _ = frames.shape
    x = frames.permute(0, 2, 1, 5, 3, 4).reshape(b * c, t * 3, h, w).float()
    x = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    off = torch.randint(0, 2 * pad + 1, (b * c, 2), generator=generator)
    rows = (off[:, :1] + torch.arange(h)).reshape(b * c, 1, h, 1).expand(-1, t * 3, -1, w + 2 * pad)
    x = x.gather(2, rows)
    cols = (off[:, 1:] + torch.arange(w)).reshape(b * c, 1, 1, w).expand(-1, t * 3, h, -1)
    x = x.gather(3, cols)
    return x.reshape(b, c, t, 3, h, w).permute(0, 2, 1, 4, 5, 3).to(torch.uint8)


class GMMHead(nn.Module):
    """Gaussian mixture over a chunk of `chunk` actions (one joint distribution per frame)."""

    def __init__(self, d: int, modes: int, min_std: float, chunk: int) -> None:
        super().__init__()
        self.modes, self.min_std, self.chunk = modes, min_std, chunk
        self.dim = chunk * ACTION_DIM
        self.linear = nn.Linear(d, modes * (2 * self.dim + 1))

    def params(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """h (..., d) -> means (..., M, k*A), stds (..., M, k*A), mixture logits (..., M)."""
        out = self.linear(h)
        m, a = self.modes, self.dim
        means = out[..., : m * a].unflatten(-1, (m, a))
        stds = F.softplus(out[..., m * a: 2 * m * a].unflatten(-1, (m, a))) + self.min_std
        return means, stds, out[..., 2 * m * a:]

    def nll(self, h: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """target (..., k, A), mask (..., k) (0 past the episode's end) -> per-action NLL (...)."""
        means, stds, logits = self.params(h)
        z = (target.flatten(-2).unsqueeze(-2) - means) / stds
        dims = mask.repeat_interleave(ACTION_DIM, dim=-1).unsqueeze(-2)          # (..., 1, k*A)
        comp = ((-0.5 * z.pow(2) - stds.log() - 0.5 * math.log(2 * math.pi)) * dims).sum(-1)   # (..., M)
        return -torch.logsumexp(comp + logits.log_softmax(-1), dim=-1) / mask.sum(-1).clamp_min(1)

    def act(self, h: torch.Tensor, sample: bool, generators: list[torch.Generator] | None = None) -> torch.Tensor:
        """h (K, d) -> action chunks (K, k, A)."""
        means, _, logits = self.params(h)
        if sample:
            probs = logits.softmax(-1)
            idx = torch.stack([torch.multinomial(probs[i], 1, generator=g)[0]
                               for i, g in enumerate(generators or [None] * len(probs))])
        else:
            idx = logits.argmax(-1)
        return means[torch.arange(len(idx)), idx].unflatten(-1, (self.chunk, ACTION_DIM))


class DeterministicHead(nn.Module):
    def __init__(self, d: int, chunk: int) -> None:
        super().__init__()
        self.chunk = chunk
        self.linear = nn.Linear(d, chunk * ACTION_DIM)

    def nll(self, h: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        err = (self.linear(h).unflatten(-1, (self.chunk, ACTION_DIM)) - target).pow(2).sum(-1)
        return (err * mask).sum(-1) / mask.sum(-1).clamp_min(1)

    def act(self, h: torch.Tensor, sample: bool = False, generators=None) -> torch.Tensor:
        return self.linear(h).unflatten(-1, (self.chunk, ACTION_DIM))


class BCTransformer(nn.Module):
    def __init__(self, cfg: PolicyModelConfig, num_tasks: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoders = nn.ModuleList(CameraEncoder(cfg) for _ in cfg.cameras)
        self.goal_proj = nn.Linear(GOAL_DIM, cfg.goal_feature_dim)
        token_in = len(cfg.cameras) * cfg.camera_feature_dim + PROPRIO_DIM + cfg.goal_feature_dim
        self.token = nn.Sequential(nn.Linear(token_in, cfg.embed_dim), nn.LayerNorm(cfg.embed_dim))
        self.position = nn.Parameter(torch.zeros(cfg.context, cfg.embed_dim))
        nn.init.normal_(self.position, std=0.02)
        self.drop = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(cfg.embed_dim, cfg.transformer_heads, cfg.ffn_mult * cfg.embed_dim,
                                           cfg.dropout, activation="gelu", batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, cfg.transformer_layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(cfg.embed_dim)
        self.head = (GMMHead(cfg.embed_dim, cfg.gmm_modes, cfg.gmm_min_std, cfg.action_chunk)
                     if cfg.head == "gmm" else DeterministicHead(cfg.embed_dim, cfg.action_chunk))
        self.register_buffer("goal_vectors", torch.zeros(num_tasks, GOAL_DIM))
        self.register_buffer("proprio_mean", torch.zeros(PROPRIO_DIM))
        self.register_buffer("proprio_std", torch.ones(PROPRIO_DIM))
        self.register_buffer("action_mean", torch.zeros(ACTION_DIM))
        self.register_buffer("action_std", torch.ones(ACTION_DIM))
        self.register_buffer("causal_mask", torch.triu(torch.full((cfg.context, cfg.context), float("-inf")), 1),
                             persistent=False)

    # --- normalization -----------------------------------------------------------------------
    def set_statistics(self, proprio_mean, proprio_std, action_mean, action_std) -> None:
        for name, value in (("proprio_mean", proprio_mean), ("proprio_std", proprio_std),
                            ("action_mean", action_mean), ("action_std", action_std)):
            value = torch.as_tensor(value, dtype=torch.float32)
            if name.endswith("std"):
                value = value.clamp_min(STD_FLOOR)
            getattr(self, name).copy_(value)

    def normalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        return (actions - self.action_mean) / self.action_std

    def denormalize_actions(self, actions: torch.Tensor) -> torch.Tensor:
        return actions * self.action_std + self.action_mean

    # --- forward -----------------------------------------------------------------------------
    def frame_tokens(self, frames: torch.Tensor, proprio: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        """frames uint8 (N, C, H, W, 3), proprio (N, 9) raw, task (N,) -> per-frame tokens (N, d)."""
        x = frames.permute(0, 1, 4, 2, 3).float().div_(255.0)                  # (N, C, 3, H, W)
        feats = [enc(x[:, i]) for i, enc in enumerate(self.encoders)]
        p = (proprio - self.proprio_mean) / self.proprio_std
        g = self.goal_proj(self.goal_vectors[task])
        return self.token(torch.cat([*feats, p, g], dim=-1))

    def temporal(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T, d), T <= context -> hidden states (B, T, d) (causal: position t sees <= t)."""
        t = tokens.shape[1]
        h = self.drop(tokens + self.position[:t])
        return self.final_norm(self.transformer(h, mask=self.causal_mask[:t, :t], is_causal=True))

    def forward(self, frames: torch.Tensor, proprio: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        b, t = frames.shape[:2]
        tok = self.frame_tokens(frames.flatten(0, 1), proprio.flatten(0, 1), task.repeat_interleave(t))
        return self.temporal(tok.unflatten(0, (b, t)))

    def loss(self, frames: torch.Tensor, proprio: torch.Tensor, task: torch.Tensor, actions: torch.Tensor,
             weights: torch.Tensor, chunk_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Weighted mean negative log-likelihood (or squared error) of the raw action chunks at every
        position: actions (B, T, k, 7), chunk_mask (B, T, k) (0 past the episode's end), weights
        (B, T) >= 0 (0 masks padding). -> (loss, per-position loss)."""
        h = self.forward(frames, proprio, task)
        per = self.head.nll(h, self.normalize_actions(actions), chunk_mask)
        return (per * weights).sum() / weights.sum().clamp_min(1e-8), per.detach()

    @torch.no_grad()
    def act_from_tokens(self, tokens: torch.Tensor, sample: bool = False,
                        generators: list[torch.Generator] | None = None) -> torch.Tensor:
        """tokens (K, T, d) of each robot's recent frames -> raw action chunks (K, k, 7) predicted
        from the last frame (the first row is for the current step)."""
        h = self.temporal(tokens)[:, -1]
        return self.denormalize_actions(self.head.act(h, sample, generators))
