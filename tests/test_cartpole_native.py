"""The native CartPole trainer on the real gymnasium CartPole-v1: short real trainings,
truncation handling, seeding, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rlkit_cartpole.env import evaluate_actions, make_vec_env
from rlkit_cartpole.native import NativeCartPoleTrainer, gae_segments, make_config
from rlkit_cartpole.policy import CartPolePolicy

from rlkit.errors import UsageError
from rlkit.interfaces import Callback, Policy


class Recorder(Callback):
    def __init__(self, stop_after: int | None = None) -> None:
        self.rows: list[dict[str, float]] = []
        self.stop_after = stop_after
        self.started = self.ended = 0

    def on_train_start(self, trainer) -> None:
        self.started += 1

    def on_metrics(self, trainer, step, metrics):
        self.rows.append(dict(metrics))
        return None if self.stop_after is None else len(self.rows) < self.stop_after

    def on_train_end(self, trainer) -> None:
        self.ended += 1


def balance(obs: np.ndarray) -> np.ndarray:
    """A hand-written controller that keeps the pole up: push toward where it is falling."""
    return (obs[:, 2] + 0.5 * obs[:, 3] > 0).astype(np.int64)


def test_policy_is_the_course_mlp() -> None:
    policy = CartPolePolicy()
    assert isinstance(policy, Policy)
    shapes = [tuple(p.shape) for p in policy.actor.parameters()]
    assert shapes == [(64, 4), (64,), (64, 64), (64,), (2, 64), (2,)]
    states = torch.randn(5, 4)
    probs = policy.log_prob(states, torch.zeros(5, dtype=torch.long)).exp()
    probs += policy.log_prob(states, torch.ones(5, dtype=torch.long)).exp()
    assert torch.allclose(probs, torch.ones(5))
    # starts near uniform: entropy close to log 2, the top of the "scissors"
    assert policy.entropy(states).min() > 0.69
    assert policy.act(states.numpy()).shape == (5,)


def test_vectorized_cartpole_keeps_gymnasiums_time_limit() -> None:
    returns = evaluate_actions(balance, episodes=10, seed=3)
    assert returns.tolist() == [500.0] * 10  # truncated at 500, as CartPole-v1
    assert evaluate_actions(lambda o: np.zeros(len(o), np.int64), 4).max() < 20


def test_gae_segments_bootstraps_truncation_but_not_termination() -> None:
    # 3 steps, 2 envs. env 0: terminates at t=0, autoreset step t=1, runs on at t=2.
    # env 1: truncated (time limit) at t=1, autoreset step at t=2.
    rewards = np.array([[1, 1], [0, 1], [1, 0]], dtype=np.float32)
    terminated = np.array([[1, 0], [0, 0], [0, 0]], dtype=bool)
    truncated = np.array([[0, 0], [0, 1], [0, 0]], dtype=bool)
    valid = np.array([[1, 1], [0, 1], [1, 0]], dtype=bool)
    values = torch.tensor([[10.0, 20.0], [11.0, 21.0], [12.0, 22.0], [13.0, 23.0]])
    before = (rewards.copy(), terminated.copy())
    segments = gae_segments(rewards, values, terminated, truncated, valid)
    # env 0: one segment (t=0, 2), bootstrapped from V(s_3); env 1: cut at its time limit,
    # bootstrapped from V(its final state) = values[2]
    assert [s.rewards.tolist() for s in segments] == [[1.0, 1.0], [1.0, 1.0]]
    assert [s.values.tolist() for s in segments] == [[10.0, 12.0], [20.0, 21.0]]
    assert [s.dones.tolist() for s in segments] == [[True, False], [False, False]]
    assert all(s.dones.dtype == torch.bool for s in segments)
    assert [s.last_value for s in segments] == [13.0, 22.0]
    assert np.array_equal(rewards, before[0]) and np.array_equal(terminated, before[1])


@pytest.mark.parametrize("algo", ["ppo", "reinforce"])
def test_short_training_logs_the_scissors_metrics(algo: str) -> None:
    trainer = NativeCartPoleTrainer(make_config(algo, timesteps=3000, seed=1))
    recorder = Recorder()
    summary = trainer.train([recorder])
    assert recorder.started == recorder.ended == 1
    assert trainer.timesteps >= 3000 and summary["timesteps"] == trainer.timesteps
    steps = [row["timesteps"] for row in recorder.rows]
    assert steps == sorted(steps) and len(steps) >= 3
    for key in ("episode_reward", "entropy", "policy_loss", "episode_length"):
        assert any(key in row for row in recorder.rows), key
    if algo == "ppo":
        assert all("value_loss" in row for row in recorder.rows)
    entropies = [row["entropy"] for row in recorder.rows]
    assert all(0 < e <= np.log(2) + 1e-6 for e in entropies)


def test_same_seed_same_curve_other_seed_other_curve() -> None:
    def curve(seed: int) -> list[dict[str, float]]:
        recorder = Recorder()
        NativeCartPoleTrainer(make_config("ppo", timesteps=2048, seed=seed)).train([recorder])
        return recorder.rows

    first, again, other = curve(7), curve(7), curve(8)
    assert first == again
    assert first != other


def test_ppo_learns_to_balance() -> None:
    """A real (short) training: after 20k steps the deterministic policy beats random play
    (about 20) by far."""
    trainer = NativeCartPoleTrainer(make_config("ppo", timesteps=20_000, seed=0))
    trainer.train()
    result = trainer.evaluate(episodes=5)
    assert result.metrics["mean_reward"] > 150
    assert result.lines[0].startswith("Mean reward: ")


def test_callback_can_stop_training() -> None:
    trainer = NativeCartPoleTrainer(make_config("reinforce", timesteps=10**6))
    recorder = Recorder(stop_after=2)
    trainer.train([recorder])
    assert len(recorder.rows) == 2 and trainer.updates == 2 and not trainer.stop_requested


def test_ctrl_c_stops_cleanly_and_checkpoint_resumes(tmp_path: Path) -> None:
    class CtrlC(Callback):  # what the session's Ctrl-C handler does
        def on_metrics(self, trainer, step, metrics):
            if trainer.updates == 3:
                trainer.request_stop()

    trainer = NativeCartPoleTrainer(make_config("ppo", timesteps=10**6, seed=2))
    trainer.train([CtrlC()])
    assert trainer.stop_requested and trainer.updates == 3
    assert trainer.progress().done == trainer.timesteps == 3 * 16 * 32
    trainer.save(tmp_path)
    loaded = NativeCartPoleTrainer.load(tmp_path)
    assert loaded.timesteps == trainer.timesteps and loaded.updates == 3
    for a, b in zip(trainer.policy.parameters(), loaded.policy.parameters()):
        assert torch.equal(a, b)
    assert loaded.evaluate(3).metrics == trainer.evaluate(3).metrics
    loaded.config.timesteps = trainer.timesteps + 512
    loaded.train()
    assert loaded.timesteps == trainer.timesteps + 512 and not loaded.stop_requested


def test_bad_settings_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown algorithm"):
        make_config("dqn")
    with pytest.raises(UsageError, match="timesteps"):
        make_config("ppo", timesteps=-5)
    with pytest.raises(UsageError, match="unknown setting"):
        make_config("ppo", bogus=1)
    with pytest.raises(UsageError, match="no usable native checkpoint"):
        NativeCartPoleTrainer.load(tmp_path)


def test_vec_env_is_gymnasiums_cartpole_with_next_step_autoreset() -> None:
    """What the PPO loop relies on: the truncating step returns the true final state, and the
    step after it is a reset step with reward 0 (masked out of training)."""
    envs = make_vec_env(1)
    assert envs.spec is not None and envs.spec.id == "CartPole-v1"
    obs, _ = envs.reset(seed=0)
    for step in range(1, 501):
        obs, reward, terminated, truncated, _ = envs.step(balance(obs))
        assert reward[0] == 1.0 and not terminated[0]
        assert truncated[0] == (step == 500)
    final = obs.copy()
    obs, reward, terminated, truncated, _ = envs.step(balance(obs))
    assert reward[0] == 0.0 and not terminated[0] and not truncated[0]
    assert np.abs(obs).max() <= 0.05 < np.abs(final).max()  # a fresh start, not the final state
    envs.close()
