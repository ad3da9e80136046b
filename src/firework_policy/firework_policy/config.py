"""Typed configuration of the multi-task policy (`config/policy.yaml`)."""
from __future__ import annotations

from dataclasses import dataclass, field

from firework_common.config import config_dir, from_dict, read_yaml
from firework_common.errors import ConfigError

DEFAULT_PRESET = "cpu"
HEADS = ("gmm", "deterministic")
GMM_EVAL = ("mode", "sample")
WEIGHTING_MODES = ("sirius", "uniform")


@dataclass(frozen=True)
class PolicyModelConfig:
    """Sizes of the BC-Transformer.

    Args:
        cameras: cameras the policy sees, in this order (frames are (cameras, H, W, 3)).
        image_size: square camera images, pixels.
        stem_channels: channels of the stem convolution.
        stem_kernel: kernel of the stem convolution.
        stem_stride: stride of the stem convolution.
        stem_pool: a 3x3 stride-2 max pool after the stem (ResNet-18 has one).
        stage_channels: channels of the residual stages; every stage after the first halves the
            resolution.
        blocks_per_stage: residual (BasicBlock) blocks per stage.
        keypoints: spatial-softmax keypoints per camera (each gives an expected x, y).
        camera_feature_dim: per-camera feature after the keypoints' projection.
        goal_feature_dim: projection of the language-goal embedding.
        embed_dim: transformer width; one token per frame.
        transformer_layers: causal transformer layers.
        transformer_heads: attention heads.
        ffn_mult: feed-forward width as a multiple of embed_dim.
        dropout: transformer and embedding dropout.
        context: frames the transformer sees (the current one and context - 1 before it).
        head: "gmm" (Gaussian mixture, robomimic's default) or "deterministic" (L2 regression).
        gmm_modes: mixture components.
        gmm_min_std: floor on each component's std (in normalized action units).
        gmm_eval: at run time, "mode" takes the most likely component's mean (deterministic);
            "sample" draws the component (robomimic's low-noise evaluation).
        random_shift: training augmentation: images shifted by up to this many pixels
            (replicate-padded, DrQ/robomimic-crop style); 0 turns it off.
        action_chunk: actions predicted from each frame: the current one and the next
            action_chunk - 1 (ACT-style chunking; 1 = one action per frame). Every frame still gets
            a fresh prediction at control rate; see ensemble_decay.
        ensemble_decay: temporal ensembling at run time: the action executed now averages what the
            last action_chunk predictions said about this step, a prediction made `age` steps ago
            weighted exp(-ensemble_decay * age) (0 = plain average; large = newest only).
    """

    cameras: tuple[str, ...] = ("agentview", "eye_in_hand")
    image_size: int = 84
    stem_channels: int = 16
    stem_kernel: int = 5
    stem_stride: int = 2
    stem_pool: bool = False
    stage_channels: tuple[int, ...] = (16, 32)
    blocks_per_stage: int = 1
    keypoints: int = 32
    camera_feature_dim: int = 64
    goal_feature_dim: int = 32
    embed_dim: int = 128
    transformer_layers: int = 2
    transformer_heads: int = 4
    ffn_mult: int = 2
    dropout: float = 0.1
    context: int = 6
    head: str = "gmm"
    gmm_modes: int = 5
    gmm_min_std: float = 0.01
    gmm_eval: str = "mode"
    random_shift: int = 4
    action_chunk: int = 1
    ensemble_decay: float = 0.0

    def __post_init__(self) -> None:
        if not self.cameras:
            raise ValueError("cameras must not be empty")
        if len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras has duplicates: {list(self.cameras)}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be >= 16, got {self.image_size}")
        if not self.stage_channels:
            raise ValueError("stage_channels must not be empty")
        if self.embed_dim % self.transformer_heads:
            raise ValueError(f"embed_dim {self.embed_dim} must be divisible by transformer_heads "
                             f"{self.transformer_heads}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.gmm_eval not in GMM_EVAL:
            raise ValueError(f"gmm_eval must be one of {GMM_EVAL}, got {self.gmm_eval!r}")
        for name in ("context", "gmm_modes", "keypoints", "blocks_per_stage", "stem_stride",
                     "transformer_layers", "action_chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.gmm_min_std <= 0:
            raise ValueError(f"gmm_min_std must be > 0, got {self.gmm_min_std}")
        if not 0 <= self.random_shift < self.image_size // 4:
            raise ValueError(f"random_shift must be in [0, image_size/4), got {self.random_shift}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.ensemble_decay < 0:
            raise ValueError(f"ensemble_decay must be >= 0, got {self.ensemble_decay}")


@dataclass(frozen=True)
class PolicyTrainConfig:
    """Behaviour cloning from round bags.

    Args:
        steps: optimizer steps when training from scratch.
        finetune_steps: optimizer steps when fine-tuning from the previous round's checkpoint.
        batch_size: context windows per batch; every frame of a window is a training target (causal
            attention), so a batch has up to batch_size * context targets.
        lr: AdamW peak learning rate (linear warm-up, then cosine decay to lr * min_lr_fraction).
        finetune_lr: peak learning rate when fine-tuning.
        min_lr_fraction: final learning rate as a fraction of the peak.
        warmup_steps: linear warm-up steps.
        weight_decay: AdamW weight decay.
        grad_clip: gradient norm clip.
        validation_fraction: share of episodes per task held out for a validation loss (0: none).
        log_every: steps between progress updates and loss-history rows.
        checkpoint_every: steps between checkpoints (a killed run resumes from the last).
        seed: RNG seed.
    """

    steps: int = 12000
    finetune_steps: int = 3000
    batch_size: int = 16
    lr: float = 5e-4
    finetune_lr: float = 2e-4
    min_lr_fraction: float = 0.1
    warmup_steps: int = 200
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    validation_fraction: float = 0.0
    log_every: int = 50
    checkpoint_every: int = 500
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "finetune_steps", "batch_size", "log_every", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if not 0 < self.min_lr_fraction <= 1:
            raise ValueError(f"min_lr_fraction must be in (0, 1], got {self.min_lr_fraction}")


@dataclass(frozen=True)
class WeightingConfig:
    """Which recorded steps the policy learns from, and how much (Sirius' weighting).

    Every step is labelled demo (an operator episode from reset), robot (the robot acted), human (an
    operator intervening after the robot acted) or pre-intervention (the robot steps just before a
    takeover). In "sirius" mode the human steps get `human_share` of the loss mass (when there are
    any); the rest is split over the other steps in proportion to their count times their per-step
    weight. "uniform" weighs every step the same (the unweighted baseline). Shares are realized by
    weighted sampling of context windows.

    With `per_task` the sirius shares apply within each task and every task keeps the share of the
    loss mass its steps have, as under uniform; without it (the default, as in single-task Sirius)
    they apply to the pooled steps of all tasks, so the task with the most interventions gets more
    of the mass (NutAssemblySquare's human steps got 29% of it in bench/weighting_ab.sh). Measured
    there, per-task was no better than pooled (config/policy.yaml).

    Args:
        mode: "sirius" or "uniform".
        human_share: share of the loss mass on intervention steps.
        demo_weight: per-step weight of demonstration steps.
        robot_weight: per-step weight of robot steps.
        pre_intervention_weight: per-step weight of pre-intervention steps (strongly down-weighted:
            that is where the robot went wrong).
        pre_intervention_steps: robot steps before each robot -> human switch that are
            pre-intervention.
        per_task: apply the sirius shares within each task (True) or over all steps pooled (False).
    """

    mode: str = "sirius"
    human_share: float = 0.5
    demo_weight: float = 1.0
    robot_weight: float = 1.0
    pre_intervention_weight: float = 0.1
    pre_intervention_steps: int = 15
    per_task: bool = False

    def __post_init__(self) -> None:
        if self.mode not in WEIGHTING_MODES:
            raise ValueError(f"mode must be one of {WEIGHTING_MODES}, got {self.mode!r}")
        if not 0 <= self.human_share < 1:
            raise ValueError(f"human_share must be in [0, 1), got {self.human_share}")
        for name in ("demo_weight", "robot_weight", "pre_intervention_weight", "pre_intervention_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class PolicyConfig:
    preset: str
    model: PolicyModelConfig
    train: PolicyTrainConfig
    weighting: WeightingConfig = field(default_factory=WeightingConfig)


def load_policy_config(preset: str = DEFAULT_PRESET, path=None) -> PolicyConfig:
    file_path = path if path is not None else config_dir() / "policy.yaml"
    data = read_yaml(file_path)
    unknown = set(data) - {"presets", "weighting"}
    if unknown:
        raise ConfigError(f"policy.yaml: unknown key(s) {sorted(unknown)}; known keys: presets, weighting")
    presets = data.get("presets", {})
    if preset not in presets:
        raise ConfigError(f"unknown policy preset {preset!r}; available: {', '.join(presets)}")
    p = presets[preset]
    unknown = set(p) - {"model", "train"}
    if unknown:
        raise ConfigError(f"policy.yaml:presets.{preset}: unknown key(s) {sorted(unknown)}; "
                          f"known keys: model, train")
    return PolicyConfig(
        preset=preset,
        model=from_dict(PolicyModelConfig, p.get("model", {}), f"policy.yaml:presets.{preset}.model"),
        train=from_dict(PolicyTrainConfig, p.get("train", {}), f"policy.yaml:presets.{preset}.train"),
        weighting=from_dict(WeightingConfig, data.get("weighting", {}), "policy.yaml:weighting"),
    )
