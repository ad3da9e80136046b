"""Typed configuration of the runtime monitor (`config/monitor.yaml`)."""
from __future__ import annotations

from dataclasses import dataclass, field

from firework_common.config import config_dir, from_dict, read_yaml
from firework_common.errors import ConfigError

DEFAULT_PRESET = "cpu"


@dataclass(frozen=True)
class WorldModelConfig:
    """Sizes of the visual world model W = (encoder, decoder, cVAE dynamics).

    Args:
        image_size: square camera images, pixels.
        num_cameras: cameras whose latents form the state embedding z_t.
        unet_channels: channels of the encoder stages (mirrored by the decoder); each stage after
            the first halves the resolution.
        stem_stride: stride of the first convolution (2 halves the image before any stage).
        latent_channels: channels of each camera's latent map.
        embed_dim: transformer width; each time step is one token (projection of z_t).
        transformer_layers: layers of each of the cVAE's three transformers.
        transformer_heads: attention heads.
        ffn_mult: feed-forward width as a multiple of embed_dim.
        cvae_latent_dim: size of the cVAE latent w.
        prior_modes: Gaussian components of the learned prior p(w | history).
        history: T, the number of past embeddings the dynamics conditions on.
        horizon: L, the steps predicted ahead autoregressively.
        futures: N, the futures sampled from the prior at run time.
        dropout: transformer dropout.
    """

    image_size: int = 84
    num_cameras: int = 2
    unet_channels: tuple[int, ...] = (16, 32)
    stem_stride: int = 2
    latent_channels: int = 4
    embed_dim: int = 128
    transformer_layers: int = 2
    transformer_heads: int = 4
    ffn_mult: int = 2
    cvae_latent_dim: int = 16
    prior_modes: int = 4
    history: int = 4
    horizon: int = 8
    futures: int = 8
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.embed_dim % self.transformer_heads:
            raise ValueError(f"embed_dim {self.embed_dim} must be divisible by transformer_heads "
                             f"{self.transformer_heads}")
        if self.stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, got {self.stem_stride}")
        if not self.unet_channels:
            raise ValueError("unet_channels must not be empty")
        if self.image_size % self.downsample_factor:
            raise ValueError(f"image_size {self.image_size} must be divisible by the total "
                             f"downsampling {self.downsample_factor}")
        for name in ("history", "horizon", "futures", "prior_modes", "num_cameras"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def downsample_factor(self) -> int:
        return self.stem_stride * 2 ** (len(self.unet_channels) - 1)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.downsample_factor

    @property
    def latent_dim(self) -> int:
        """Size of the flattened state embedding z_t (all cameras)."""
        return self.num_cameras * self.latent_channels * self.latent_size**2


@dataclass(frozen=True)
class WorldModelTrainConfig:
    """Joint training of encoder, decoder and dynamics.

    Args:
        steps: optimizer steps.
        chunks_per_batch: contiguous frame chunks per batch; every (history + horizon) window inside
            a chunk is a training sample, so each encoded frame serves several windows.
        chunk_length: frames per chunk (>= history + horizon).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        recon_weight: weight of the image reconstruction L2 loss.
        latent_weight: weight of the L-step latent prediction loss. That loss is relative: the
            prediction's MSE divided by the batch's MSE of "repeat the last latent" (real frames
            only), so 1.0 = no better than standing still, whatever the scene's amount of motion.
        kl_weight: weight of KL(posterior || prior) of the cVAE latent.
        latent_baseline_floor: lower bound of that denominator (standardized-latent MSE): a batch
            in which nothing moves must not turn tiny prediction errors into huge losses.
        delta_scale_momentum: momentum of the moving RMS of z_{t+1} - z_t that scales the
            dynamics' residual output.
        delta_scale_floor: that RMS is floored per dimension at this fraction of its mean.
        recon_frames_per_chunk: frames per chunk that are decoded for the reconstruction loss
            (decoding every frame would double the cost for little gain).
        log_every: steps between progress updates.
        checkpoint_every: steps between checkpoints (a killed run resumes from the last).
        seed: RNG seed.
    """

    steps: int = 2000
    chunks_per_batch: int = 2
    chunk_length: int = 20
    lr: float = 1e-3
    weight_decay: float = 1e-4
    recon_weight: float = 1.0
    latent_weight: float = 1.0
    kl_weight: float = 0.01
    latent_baseline_floor: float = 5e-5
    delta_scale_momentum: float = 0.99
    delta_scale_floor: float = 0.1
    recon_frames_per_chunk: int = 4
    log_every: int = 50
    checkpoint_every: int = 500
    seed: int = 0


@dataclass(frozen=True)
class FailureConfig:
    """Per-task 3-class failure classifier {normal, failure, human} on frozen embeddings.

    Args:
        pre_intervention_steps: M, steps before each takeover labelled "failure".
        feature_dims: principal components of the task's z the classifier sees (for z_t, for
            the imagined change ẑ_{t+L} - z_t and for the observed change z_t - z_{t-lookback}).
        motion_lookback: steps of observed history the classifier sees: the change over that
            many steps and the largest/mean displacement from z_t within them. A takeover follows
            a stretch without progress, which the latest frame alone cannot show.
        hidden_dim: classifier MLP width.
        dropout: classifier dropout (a task has only a few hundred failure steps to learn from).
        weight_decay: AdamW weight decay of the classifier.
        steps: training steps.
        batch_size: balanced batch size (equal share per class present).
        lr: AdamW learning rate.
        finetune_steps: steps of fine-tuning on the newest round's labels.
        flag_window: ticks considered by the voting rule.
        flag_votes: ticks within the window where "failure" must be the most likely class.
        probability_threshold: a failure probability above this flags on its own.
        smoothing_ticks: the reported class probabilities are the mean over this robot's last
            `smoothing_ticks` ticks (one tick's estimate is noisy; a stall builds up over seconds).
    """

    pre_intervention_steps: int = 15
    feature_dims: int = 16
    motion_lookback: int = 15
    hidden_dim: int = 128
    dropout: float = 0.1
    weight_decay: float = 0.01
    steps: int = 1500
    batch_size: int = 128
    lr: float = 1e-3
    finetune_steps: int = 500
    flag_window: int = 3
    flag_votes: int = 2
    probability_threshold: float = 0.5
    smoothing_ticks: int = 5

    def __post_init__(self) -> None:
        for name in ("pre_intervention_steps", "feature_dims", "motion_lookback", "flag_window",
                     "flag_votes", "smoothing_ticks"):
            if getattr(self, name) < 1:
                raise ValueError(f"failure.{name} must be >= 1, got {getattr(self, name)}")
        if self.flag_votes > self.flag_window:
            raise ValueError(f"failure.flag_votes ({self.flag_votes}) must be <= failure.flag_window "
                             f"({self.flag_window})")


@dataclass(frozen=True)
class OODConfig:
    """Per-task out-of-distribution detector: PCA to l dims + k-means with c centroids.

    Args:
        pca_dims: l.
        clusters: c.
        max_fit_embeddings: cap on the embeddings sampled from the data so far for the fit.
        appearance_weight: weight of the standardized appearance summaries (per camera and latent
            channel, the spatial mean and std of z) next to the PCA coordinates in k-means.
        validation_fraction: share of episodes held out; their distances set the threshold.
        seed: RNG seed.
    """

    pca_dims: int = 32
    clusters: int = 64
    max_fit_embeddings: int = 20000
    appearance_weight: float = 1.0
    validation_fraction: float = 0.2
    seed: int = 0


@dataclass(frozen=True)
class ThresholdConfig:
    """theta_g = a + b * exp(-c * p_H), clipped to [min_percentile, max_percentile]."""

    a: float = 95.0
    b: float = 0.0
    c: float = 1.0
    min_percentile: float = 50.0
    max_percentile: float = 99.9


@dataclass(frozen=True)
class MonitorConfig:
    preset: str
    world_model: WorldModelConfig
    train: WorldModelTrainConfig
    failure: FailureConfig = field(default_factory=FailureConfig)
    ood: OODConfig = field(default_factory=OODConfig)
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)


def load_monitor_config(preset: str = DEFAULT_PRESET, path=None) -> MonitorConfig:
    file_path = path if path is not None else config_dir() / "monitor.yaml"
    data = read_yaml(file_path)
    presets = data.get("presets", {})
    if preset not in presets:
        raise ConfigError(f"unknown world-model preset {preset!r}; available: {', '.join(presets)}")
    p = presets[preset]
    unknown = set(p) - {"world_model", "train"}
    if unknown:
        raise ConfigError(f"monitor.yaml:presets.{preset}: unknown key(s) {sorted(unknown)}")
    unknown = set(data) - {"presets", "failure", "ood", "threshold"}
    if unknown:
        raise ConfigError(f"monitor.yaml: unknown key(s) {sorted(unknown)}")
    return MonitorConfig(
        preset=preset,
        world_model=from_dict(WorldModelConfig, p["world_model"], f"monitor.yaml:presets.{preset}.world_model"),
        train=from_dict(WorldModelTrainConfig, p["train"], f"monitor.yaml:presets.{preset}.train"),
        failure=from_dict(FailureConfig, data.get("failure", {}), "monitor.yaml:failure"),
        ood=from_dict(OODConfig, data.get("ood", {}), "monitor.yaml:ood"),
        threshold=from_dict(ThresholdConfig, data.get("threshold", {}), "monitor.yaml:threshold"),
    )
