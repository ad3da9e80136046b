"""Error predictors beat chance on held-out episodes; the threshold fit recovers known constants;
the fleet runtime turns bad input into a flagged "cannot assess" estimate instead of crashing."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from firework_common.errors import DataError, UsageError
from firework_monitor.config import ThresholdConfig, load_monitor_config
from firework_monitor.data import ChunkSampler
from firework_monitor.threshold import adaptive_percentile, direction, fit_threshold_curve, theta_curve
from firework_monitor.world_model import WorldModel
from synthetic_episodes import make_episodes

SYNTHETIC = Path("synthetic")


@pytest.fixture(scope="module")
def tiny():
    return load_monitor_config("tiny")


@pytest.fixture(scope="module")
def fitted(tiny):
    """Tiny world model + predictors fitted on synthetic episodes (train), plus held-out episodes."""
    from firework_monitor.predictors import fit_predictors

    torch.manual_seed(0)
    train = make_episodes(10, 16)
    model = WorldModel(tiny.world_model)
    opt = torch.optim.AdamW(model.parameters(), lr=tiny.train.lr)
    sampler = ChunkSampler(train, tiny.train.chunk_length, 0)
    for _ in range(80):
        frames, valid = sampler.sample(4)
        loss = model.loss(torch.from_numpy(frames), tiny.train, torch.from_numpy(valid))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval().requires_grad_(False)
    predictors, report = fit_predictors(model, train, SYNTHETIC, tiny, show_progress=False)
    return model, predictors, report


def test_failure_and_ood_predictors_beat_chance_on_held_out_episodes(fitted):
    from firework_monitor.evaluate import evaluate_monitor

    model, predictors, report = fitted
    assert report["Lift"]["classifier_loss_last"] < report["Lift"]["classifier_loss_first"]
    held_out = make_episodes(99, 8)
    unseen = make_episodes(98, 4, background=90)      # the lighting changed
    result = evaluate_monitor(model, predictors, held_out, unseen)
    lift = result["tasks"]["Lift"]
    assert lift["failure_auroc"] > 0.7
    assert lift["ood_auroc"] > 0.8
    assert lift["flags"]["recall"] > 0.5


def test_predictors_round_trip(fitted, tmp_path):
    from firework_monitor.predictors import ErrorPredictors

    model, predictors, _ = fitted
    predictors.save(tmp_path)
    loaded = ErrorPredictors.load(tmp_path, model)
    a, b = predictors.tasks["Lift"], loaded.tasks["Lift"]
    np.testing.assert_array_equal(a.ood.centroids, b.ood.centroids)
    np.testing.assert_array_equal(a.ood.validation_scores, b.ood.validation_scores)
    for k, v in a.classifier.state_dict().items():
        assert torch.equal(v, b.classifier.state_dict()[k])
    assert a.intervention_ratio == b.intervention_ratio


def test_predictors_refuse_another_world_model(fitted, tiny, tmp_path):
    from firework_monitor.predictors import ErrorPredictors

    _, predictors, _ = fitted
    predictors.save(tmp_path)
    other = WorldModel(dataclasses.replace(tiny.world_model, embed_dim=64, transformer_heads=2))
    with pytest.raises(DataError, match="embed_dim is 32; expected 64"):
        ErrorPredictors.load(tmp_path, other)


def test_finetuning_starts_from_the_previous_classifier(fitted, tiny):
    from firework_monitor.predictors import fit_predictors

    model, predictors, _ = fitted
    before = {k: v.clone() for k, v in predictors.tasks["Lift"].classifier.state_dict().items()}
    newer, report = fit_predictors(model, make_episodes(11, 6), SYNTHETIC, tiny, previous=predictors,
                                   show_progress=False)
    assert report["Lift"]["finetuned"]
    after = newer.tasks["Lift"].classifier.state_dict()
    # Same input scale as the previous round's classifier, weights moved from where it left them.
    assert torch.equal(after["feature_mean"], before["feature_mean"])
    first = "net.0.weight"
    moved = (after[first] - before[first]).norm() / before[first].norm()
    assert 0 < moved < 1.0
    assert report["Lift"]["classifier_loss_last"] < report["Lift"]["classifier_loss_first"]


def test_runtime_tick_assesses_every_robot_and_survives_bad_input(fitted):
    from firework_monitor.runtime import FIRED_INVALID, FleetMonitor, RobotInput

    model, predictors, _ = fitted
    monitor = FleetMonitor(model, predictors)
    frames = make_episodes(5, 1)[0].frames
    good = RobotInput("robot_0", "Lift", frames[0], proprio=np.zeros(9))
    bad = [
        RobotInput("robot_1", "Lift", frames[0][:, :64]),                          # wrong size
        RobotInput("robot_2", "Lift", np.ascontiguousarray(frames[0].transpose(0, 3, 1, 2))),  # CHW
        RobotInput("robot_3", "Lift", frames[0].astype(np.float32)),               # dtype
        RobotInput("robot_4", "Lift", frames[0], proprio=np.array([0.0, np.nan])),  # NaN proprio
        RobotInput("robot_5", "Stack", frames[0]),                                 # unknown task
    ]
    out = monitor.tick([good, *bad])
    assert len(out) == 6
    assert out[0].valid and 0.0 <= out[0].failure_probability <= 1.0 and np.isfinite(out[0].ood_score)
    assert out[0].ood_threshold > 0
    reasons = [r.reason for r in out[1:]]
    assert all(not r.valid and r.flag and r.fired == (FIRED_INVALID,) for r in out[1:])
    assert "expected (2, 84, 84, 3)" in reasons[0]
    assert "channels first" in reasons[1]
    assert "dtype is float32; expected uint8" in reasons[2]
    assert "proprio contains NaN" in reasons[3]
    assert "unknown task 'Stack'" in reasons[4]
    # The history advances per robot: the next tick still works and robots stay independent.
    out2 = monitor.tick([RobotInput("robot_0", "Lift", frames[1]), RobotInput("robot_9", "Lift", frames[1])])
    assert all(r.valid for r in out2)


def test_unknown_task_lookup_names_the_fitted_tasks(fitted):
    _, predictors, _ = fitted
    with pytest.raises(UsageError, match="fitted tasks: Lift"):
        predictors.get("Door")


@pytest.mark.parametrize("a,b,c", [(96.0, 3.5, 4.0), (90.0, -10.0, 2.0)])
def test_threshold_fit_recovers_known_constants(a, b, c):
    rng = np.random.default_rng(0)
    p_h = rng.uniform(0.0, 1.0, 12)
    theta = theta_curve(p_h, a, b, c) + rng.normal(0, 0.02, len(p_h))
    fit = fit_threshold_curve(p_h, theta)
    assert fit.a == pytest.approx(a, abs=0.5)
    assert fit.b == pytest.approx(b, abs=0.5)
    assert fit.c == pytest.approx(c, rel=0.15)
    assert fit.direction == ("falls" if b > 0 else "rises")


def test_threshold_direction_and_clipping():
    assert direction(95.2, -17.7, 3.2) == "rises"        # the published constants
    assert direction(90.0, 8.0, 3.0) == "falls"          # the paper's stated intuition
    cfg = ThresholdConfig(a=90.0, b=20.0, c=1.0, min_percentile=50.0, max_percentile=99.0)
    assert adaptive_percentile(0.0, cfg) == 99.0         # clipped
    assert adaptive_percentile(2.0, cfg) < adaptive_percentile(1.0, cfg) < 99.0
    with pytest.raises(ValueError, match="at least 3"):
        fit_threshold_curve(np.array([0.1, 0.2]), np.array([90.0, 91.0]))


def test_failure_labels_span_the_supervisors_stall_window():
    """The supervisor takes over after `stall_steps` without progress, and the M steps before a
    takeover are labelled "failure": equal lengths make the label the stall itself (with a longer
    stall window the label was the stall's second half, which only elapsed time told apart)."""
    from firework_sim.config import load_operator_config

    assert (load_operator_config().supervisor.stall_steps
            == load_monitor_config().failure.pre_intervention_steps)


def test_failure_features_see_the_observed_motion(tiny):
    """The classifier's history inputs: a robot that held still over the lookback window shows no
    observed change and no displacement; one that moved shows exactly how far."""
    from firework_monitor.failure import FailureClassifier, feature_width

    dims, latent, window = 4, 6, tiny.failure.motion_lookback + 1
    clf = FailureClassifier(latent, dims, 8)
    clf.projection[:dims, :dims] = torch.eye(dims)          # identity on the first 4 latent dims
    still = torch.ones(1, window, latent)
    moving = still.clone()
    moving[0, :, 0] = torch.arange(window, dtype=torch.float32)  # one unit per step along dim 0
    futures = torch.ones(1, 3, latent)
    f_still, f_moving = clf.features(still, futures), clf.features(moving, futures)
    assert f_still.shape == (1, 3, feature_width(dims))
    observed, largest, mean = slice(dims, 2 * dims), 2 * dims, 2 * dims + 1
    assert torch.all(f_still[..., observed] == 0) and torch.all(f_still[..., [largest, mean]] == 0)
    assert f_moving[0, 0, dims] == window - 1                  # z_t - z_{t-lookback} along dim 0
    assert f_moving[0, 0, largest] == window - 1
    assert f_moving[0, 0, mean] == pytest.approx(np.mean(np.arange(1, window)))
    with pytest.raises(ValueError, match="lookback"):
        clf.features(still[:, :1], futures)


def test_failure_filter_smooths_over_ticks_and_votes():
    from firework_monitor.config import FailureConfig
    from firework_monitor.failure import FailureFilter

    cfg = FailureConfig(smoothing_ticks=2, flag_window=3, flag_votes=2, probability_threshold=0.9)
    filt = FailureFilter(cfg)
    normal, failing = np.array([0.8, 0.2, 0.0]), np.array([0.2, 0.8, 0.0])
    smoothed, flag = filt.update(normal)
    assert np.allclose(smoothed, normal) and not flag
    smoothed, flag = filt.update(failing)                  # mean of the two: a tie, argmax normal
    assert np.allclose(smoothed, [0.5, 0.5, 0.0]) and not flag
    smoothed, flag = filt.update(failing)                  # one failure vote
    assert np.allclose(smoothed, failing) and not flag
    _, flag = filt.update(failing)                         # two votes in the last three ticks
    assert flag
    with pytest.raises(ValueError, match="flag_votes"):
        FailureConfig(flag_window=2, flag_votes=3)


def test_predictors_fitted_on_other_inputs_are_refused(fitted, tmp_path):
    import json

    from firework_monitor.predictors import ErrorPredictors

    model, predictors, _ = fitted
    predictors.save(tmp_path)
    meta_path = tmp_path / "predictors.json"
    meta = json.loads(meta_path.read_text())
    for task_meta in meta["config"]["tasks"].values():
        task_meta.pop("feature_version")
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DataError, match="feature_version None, expected"):
        ErrorPredictors.load(tmp_path, model)
