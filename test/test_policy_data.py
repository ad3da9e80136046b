"""Policy data: step labels from who acted, Sirius weighting realizes the configured shares, bad bags
are refused by name, and the language-goal embedding differs across tasks and is stable."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from firework_common.errors import DataError
from firework_common.schema import ControlSource
from firework_policy.config import WeightingConfig, load_policy_config
from firework_policy.data import (
    PolicyDataset,
    SampleLabel,
    label_counts,
    label_shares,
    load_policy_rounds,
    mass_shares,
    realized_shares,
    sample_labels,
)
from firework_policy.goals import GOAL_DIM, embed_goals, goal_table
from firework_sim.tasks import TASKS
from policy_synthetic import write_episode, write_round

CAMS = ("agentview", "eye_in_hand")
R, H = ControlSource.ROBOT, ControlSource.HUMAN
D, RO, HU, PRE = SampleLabel.DEMO, SampleLabel.ROBOT, SampleLabel.HUMAN, SampleLabel.PRE_INTERVENTION


def test_labels_follow_who_acted():
    sources = np.array([R] * 6 + [H] * 3 + [R] * 2 + [H] * 2)
    labels = sample_labels(sources, demonstration=False, pre_steps=2)
    assert labels.tolist() == [RO, RO, RO, RO, PRE, PRE, HU, HU, HU, PRE, PRE, HU, HU]
    # An operator episode from reset is a demonstration, whoever is named in the sources.
    assert (sample_labels(np.array([H] * 5), True, 2) == D).all()
    # Human steps before any robot step are demonstration-like, not interventions.
    assert sample_labels(np.array([H, H, R, R, H]), False, 1).tolist() == [D, D, RO, PRE, HU]


@pytest.fixture(scope="module")
def mixed_round(tmp_path_factory):
    """Per task: 3 demos and 4 robot episodes with a takeover at step 20 (of 36)."""
    return write_round(tmp_path_factory.mktemp("round") / "round_1", demos=3, takeovers=4, steps=36,
                       takeover_at=20)


@pytest.fixture(scope="module")
def mixed_episodes(mixed_round):
    return load_policy_rounds([mixed_round], CAMS, 84, pre_steps=15)


def test_round_bags_load_with_their_labels(mixed_episodes):
    assert len(mixed_episodes) == 14
    counts = label_counts(np.concatenate([ep.labels for ep in mixed_episodes]))
    # 6 demos x 36; 8 takeover episodes x (5 robot, 15 pre-intervention, 16 human).
    assert counts == {D: 216, RO: 40, PRE: 120, HU: 128}
    ep = mixed_episodes[0]
    assert ep.frames.shape == (36, 2, 84, 84, 3) and ep.proprio.shape == (36, 9) and ep.actions.shape == (36, 7)


@pytest.mark.parametrize("weighting", [
    WeightingConfig(),
    WeightingConfig(human_share=0.3, pre_intervention_weight=0.0, robot_weight=0.5),
    WeightingConfig(mode="uniform"),
])
def test_weighted_sampling_realizes_the_configured_shares(mixed_episodes, weighting):
    ds = PolicyDataset(mixed_episodes, ("Lift", "Door"), 6, weighting, seed=0)
    expected = label_shares(label_counts(ds.labels), weighting)
    if weighting.mode == "sirius":
        assert expected[HU] == pytest.approx(weighting.human_share)
        rest = 216 * weighting.demo_weight + 40 * weighting.robot_weight + 120 * weighting.pre_intervention_weight
        assert expected[PRE] == pytest.approx((1 - weighting.human_share) * 120 * weighting.pre_intervention_weight / rest)
    else:
        assert expected[HU] == pytest.approx(128 / 504)
    realized = realized_shares(ds, batches=300, batch_size=32)
    for label in SampleLabel:
        assert realized[label.name.lower().replace("_", "-")] == pytest.approx(expected[label], abs=0.02), label
    b = ds.sample(64)
    np.testing.assert_allclose(b.weights.sum(axis=1), 1.0, rtol=1e-5)   # each window carries mass 1
    assert b.index.shape == (64, 6) and (b.weights >= 0).all()


@pytest.fixture(scope="module")
def uneven_episodes(tmp_path_factory):
    """Lift: 2 demos + 4 takeover episodes; Door: 3 demos, no interventions (24 steps each)."""
    root = tmp_path_factory.mktemp("uneven")
    lift = write_round(root / "lift", tasks=("Lift",), demos=2, takeovers=4, takeover_at=14)
    door = write_round(root / "door", tasks=("Door",), demos=3, seed=100)
    return load_policy_rounds([lift, door], CAMS, 84, pre_steps=5)


def test_per_task_weighting_keeps_each_tasks_mass_and_weights_interventions_within_it(uneven_episodes):
    per_task = PolicyDataset(uneven_episodes, ("Lift", "Door"), 6, WeightingConfig(per_task=True), seed=0)
    pooled = PolicyDataset(uneven_episodes, ("Lift", "Door"), 6, WeightingConfig(per_task=False), seed=0)
    lift, door = per_task.step_task == 0, per_task.step_task == 1
    assert lift.sum() == 6 * 24 and door.sum() == 3 * 24
    # Per task: Door keeps its 1/3 of the mass; within Lift, interventions get half of Lift's.
    assert per_task.q[door].sum() == pytest.approx(1 / 3)
    lift_shares = mass_shares(per_task.labels[lift], per_task.q[lift])
    assert lift_shares[HU] == pytest.approx(0.5)
    assert mass_shares(per_task.labels, per_task.q)[HU] == pytest.approx(0.5 * 2 / 3)
    # Pooled: interventions get half of all mass, taken from Door (the task without any).
    assert mass_shares(pooled.labels, pooled.q)[HU] == pytest.approx(0.5)
    assert pooled.q[door].sum() < 1 / 3 - 0.05
    # Uniform ignores tasks: every step the same.
    uniform = PolicyDataset(uneven_episodes, ("Lift", "Door"), 6, WeightingConfig(mode="uniform"), seed=0)
    np.testing.assert_allclose(uniform.q, 1 / len(uniform.q))
    realized = realized_shares(per_task, batches=300, batch_size=32)
    assert realized["human"] == pytest.approx(1 / 3, abs=0.02)


def test_weights_never_cross_episodes_and_padding_is_masked(mixed_episodes):
    ds = PolicyDataset(mixed_episodes, ("Lift", "Door"), 6, WeightingConfig(), seed=1)
    b = ds.sample(256)
    starts = np.concatenate([[0], np.cumsum([ep.num_steps for ep in mixed_episodes])])
    episode_of = np.searchsorted(starts, b.index, side="right") - 1
    assert (episode_of == episode_of[:, -1:]).all()                    # one episode per window
    # Padding repeats an edge step; only one copy of each step carries loss (every q is > 0 here).
    unique_steps = [len(set(row)) for row in b.index.tolist()]
    assert ((b.weights > 0).sum(axis=1) == unique_steps).all()
    assert (b.index[:, 0] < b.index[:, -1]).any() and (b.index[:, 0] == b.index[:, 1]).any()


def test_action_chunks_are_the_next_actions_masked_at_the_episode_end(mixed_episodes):
    ds = PolicyDataset(mixed_episodes, ("Lift", "Door"), 6, WeightingConfig(), seed=2, chunk=4)
    b = ds.sample(256)
    _, _, _, actions, _, mask = ds.tensors(b)
    actions, mask = actions.numpy(), mask.numpy()
    end = b.episode_end[:, None, None]
    future = b.index[..., None] + np.arange(4)
    np.testing.assert_array_equal(mask, (future <= end).astype(np.float32))
    np.testing.assert_array_equal(actions[..., 0, :], ds.actions[b.index])     # row 0 = the step's own action
    valid = mask.astype(bool)
    np.testing.assert_array_equal(actions[valid], ds.actions[future[valid]])
    assert (~valid).any()                              # some chunks reach past an episode's end


def test_only_demos_give_all_mass_to_demos():
    shares = label_shares({D: 100, RO: 0, HU: 0, PRE: 0}, WeightingConfig())
    assert shares[D] == 1.0 and shares[HU] == 0.0


def test_bag_without_actions_is_a_named_data_error(tmp_path):
    write_episode(tmp_path, 0, "Lift", 10, seed=0)
    write_episode(tmp_path, 1, "Lift", 10, seed=1, with_actions=False)
    with pytest.raises(DataError, match=r"00001_Lift has no messages on /robot_0/action: an episode without actions"):
        load_policy_rounds([tmp_path], CAMS, 84, 15)


def test_wrong_image_size_and_missing_camera_are_named(tmp_path):
    write_episode(tmp_path, 0, "Lift", 8, seed=0, size=64)
    with pytest.raises(DataError, match=r"camera 'agentview' images are 64x64x3; the policy expects 84x84x3"):
        load_policy_rounds([tmp_path], CAMS, 84, 15)
    with pytest.raises(DataError, match=r"no images for camera\(s\) \['wrist'\]"):
        load_policy_rounds([tmp_path], ("agentview", "wrist"), 64, 15)


def test_goal_embedding_differs_across_tasks_and_is_stable():
    goals = [t.language_goal for t in TASKS]
    a = embed_goals(goals)
    b = embed_goals(goals, fresh=True)                  # a second load of the encoder
    assert a.shape == (len(TASKS), GOAL_DIM) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    cos = a @ a.T
    assert (cos[~np.eye(len(TASKS), dtype=bool)] < 0.9).all()          # every goal is distinct
    table = goal_table(["Door", "Lift"])
    np.testing.assert_allclose(table.vectors, a[[4, 0]], atol=1e-6)     # order follows the request
    assert table.goals == ("open the door", "lift the red cube")


def test_policy_config_weighting_defaults_are_sirius():
    w = load_policy_config("tiny").weighting
    assert w.mode == "sirius" and w.human_share == 0.5 and w.pre_intervention_weight < w.robot_weight
    with pytest.raises(ValueError, match="human_share"):
        dataclasses.replace(w, human_share=1.5)
