"""rlkit's own CartPole trainer: REINFORCE or PPO, on the exercise functions, top to bottom.

Read it like CleanRL: a config dataclass, then one loop per algorithm.

    PPO        collect n_steps in num_envs CartPoles at once (one batched forward pass per step)
               → one batched pass for V(s) and log π_old(a|s) → gae → epochs × minibatches of
               ppo_clip_loss + value loss → log
    REINFORCE  play one whole episode in each of num_envs CartPoles → returns_to_go →
               one gradient step of reinforce_loss → log

Truncation (the 500-step time limit). An episode cut by the time limit did not *end*: the pole
was still up, so the state has value. PPO bootstraps: at a truncated step it adds γ·V(s_final)
to the reward and cuts the GAE recursion there, exactly as it does at the end of each rollout
(where the next state's value is the rollout's bootstrap). Gymnasium's vectorized CartPole
returns the true final state at the truncating step, so V(s_final) comes from the same batched
forward pass as every other value. REINFORCE has no critic to bootstrap from: it treats the
time limit as the episode's end. With γ = 0.99 a return looks ~100 steps ahead, so only the
last ~100 steps of a 500-step episode see a (slightly) shortened return.

Seeding. ``seed`` fixes the network's initialization (torch), the action sampling (a private
torch Generator), the minibatch shuffles (a private numpy Generator) and the environments'
starting states; the loop runs on one CPU thread. The same seed gives the same curve, number
for number.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from rlkit.errors import UsageError
from rlkit.interfaces import Callback, Evaluation, Progress, Trainer, notify_metrics
from rlkit.runs import write_json, written_whole
from rlkit_cartpole.env import evaluate_greedy, make_vec_env
from rlkit_cartpole.objectives import PPOObjective, ReinforceObjective
from rlkit_cartpole.policy import CartPolePolicy
from rlkit_cartpole.rollout import Rollouts, env_major, gae_segments  # noqa: F401 - public here too
from rlkit_cartpole.runtime import torch_threads
from rlkit_cartpole.settings import (  # noqa: F401 - the native settings, importable from here
    CONFIGS,
    NativeConfig,
    PPOConfig,
    ReinforceConfig,
    make_config,
)

CHECKPOINT = "checkpoint.pt"
TRAINER_JSON = "trainer.json"


class NativeCartPoleTrainer(Trainer):
    """Trains the course's CartPole policy with the exercise functions (solution or student)."""

    task = "cartpole"
    backend = "native"
    records_video = True

    def __init__(self, config: NativeConfig) -> None:
        self.settings = self.config = config
        with torch.random.fork_rng(devices=[]):  # seed the initialization, not the world
            torch.manual_seed(config.seed)
            self.policy = CartPolePolicy(
                hidden=config.hidden, critic=config.algo == "ppo", activation=config.activation
            )
        # fused: one kernel for the whole Adam step, a large saving on a network this small
        self.optimizer = torch.optim.Adam(
            self.policy.parameters(), lr=config.learning_rate, eps=1e-5, fused=True
        )
        self.sampler = torch.Generator().manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.timesteps = 0
        self.updates = 0
        self._objective: PPOObjective | ReinforceObjective | None = None

    @property
    def objective(self) -> PPOObjective | ReinforceObjective:
        """Built on first use, so that evaluating a saved run needs no workspace."""
        if self._objective is None:
            c = self.config
            path = Path(c.path) if c.path else None
            if isinstance(c, PPOConfig):
                self._objective = PPOObjective(
                    c.impl, path, c.gamma, c.gae_lambda, c.clip_eps, c.vf_coef, c.ent_coef
                )
            elif isinstance(c, ReinforceConfig):
                self._objective = ReinforceObjective(c.impl, path, c.gamma, c.normalize)
            else:
                raise UsageError(f"unknown algorithm {c.algo!r}")
        return self._objective

    # -- training --------------------------------------------------------------------------
    def progress(self) -> Progress:
        return Progress(self.timesteps, self.config.timesteps, "timestep")

    def before_training(self) -> None:
        """Load the exercise files now: a missing or broken workspace fails before the run
        directory is made."""
        self.objective  # noqa: B018

    def train(self, callbacks: Sequence[Callback] = ()) -> dict[str, float]:
        """Train until ``config.timesteps`` steps in total; ``request_stop`` (Ctrl-C) stops
        after the update under way, leaving a policy that ``save`` can write."""
        loop = self._train_ppo if self.config.algo == "ppo" else self._train_reinforce
        objective = self.objective  # a missing student file fails here, before any step
        for callback in callbacks:
            callback.on_train_start(self)
        with torch_threads(self.config.threads):
            last = loop(objective, callbacks)
        for callback in callbacks:
            callback.on_train_end(self)
        return {"timesteps": float(self.timesteps), "updates": float(self.updates), **last}

    def _train_ppo(
        self, objective: PPOObjective, callbacks: Sequence[Callback]
    ) -> dict[str, float]:
        c = self.config
        assert isinstance(c, PPOConfig)
        n, t_max = c.num_envs, c.n_steps

        def sample(obs: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                probs = torch.softmax(self.policy.logits(obs), dim=-1)
            return torch.multinomial(probs, 1, generator=self.sampler).squeeze(-1)

        metrics: dict[str, float] = {}
        with Rollouts(n, seed=c.seed + self.timesteps) as rollouts:
            while self.timesteps < c.timesteps:
                if c.anneal_lr:
                    for group in self.optimizer.param_groups:
                        group["lr"] = c.learning_rate * (1.0 - self.timesteps / c.timesteps)
                # 1. Collect n_steps in every env: one batched forward pass per step; the
                #    autoreset steps are marked invalid (rlkit_cartpole.rollout).
                rollout = rollouts.collect(sample, t_max)
                b_obs, b_actions, b_valid = rollout.obs, rollout.actions, rollout.valid
                finished, lengths = rollout.finished, rollout.lengths
                self.timesteps += n * t_max

                # 2. Values of every state (s_0 … s_T) and log π_old, in one batched pass each.
                with torch.no_grad():
                    values = self.policy.value(b_obs.view(-1, 4)).view(t_max + 1, n)
                    logits = self.policy.logits(b_obs[:t_max].reshape(-1, 4))
                old_log_probs = objective.old_log_probs(logits, b_actions.view(-1))

                # 3. Advantages: gae on each env's segments, bootstrapped from last_value.
                segments = gae_segments(
                    rollout.rewards, values, rollout.terminated, rollout.truncated, b_valid
                )
                advantages, returns = objective.advantages(segments)
                valid = torch.from_numpy(b_valid)
                batch = {
                    "obs": env_major(b_obs[:t_max], valid),
                    "actions": env_major(b_actions, valid),
                    "old_log_probs": env_major(old_log_probs.view(t_max, n), valid),
                    "advantages": advantages,
                    "returns": returns,
                }

                # 4. Several epochs of minibatch updates on this batch.
                size = len(advantages)
                sums: dict[str, float] = {}
                for _ in range(c.epochs):
                    order = torch.from_numpy(self.rng.permutation(size))
                    for idx in order.chunk(c.minibatches):
                        loss, stats = objective(self.policy, {k: v[idx] for k, v in batch.items()})
                        self.optimizer.zero_grad()
                        loss.backward()
                        if c.max_grad_norm > 0:
                            torch.nn.utils.clip_grad_norm_(
                                self.policy.parameters(), c.max_grad_norm
                            )
                        self.optimizer.step()
                        for k, v in stats.items():
                            sums[k] = sums.get(k, 0.0) + v
                self.updates += 1

                # 5. Log: the rollout's finished episodes, and the update's averages.
                steps = c.epochs * c.minibatches
                metrics = {"timesteps": float(self.timesteps)}
                if finished:
                    metrics["episode_reward"] = float(np.mean(finished))
                    metrics["episode_length"] = float(np.mean(lengths))
                metrics.update({k: v / steps for k, v in sums.items()})
                with torch.no_grad():  # the entropy of the policy that played the rollout
                    metrics["entropy"] = float(objective.probs.entropy(logits).mean())
                if not notify_metrics(callbacks, self, self.timesteps, metrics):
                    break
        return metrics

    def _train_reinforce(
        self, objective: ReinforceObjective, callbacks: Sequence[Callback]
    ) -> dict[str, float]:
        c = self.config
        n = c.num_envs
        envs = make_vec_env(n)
        envs.reset(seed=c.seed + self.timesteps)
        metrics: dict[str, float] = {}
        try:
            while self.timesteps < c.timesteps:
                # 1. Play one whole episode in each env (the policy is fixed meanwhile). An env
                #    whose episode is over keeps stepping (autoreset) but is masked out.
                obs, _ = envs.reset()
                running = np.ones(n, dtype=bool)
                b_obs, b_actions, b_rewards, b_dones, b_valid = [], [], [], [], []
                while running.any():
                    obs_t = torch.from_numpy(obs)
                    with torch.no_grad():
                        probs = torch.softmax(self.policy.logits(obs_t), dim=-1)
                    actions = torch.multinomial(probs, 1, generator=self.sampler).squeeze(-1)
                    obs, reward, terminated, truncated, _ = envs.step(actions.numpy())
                    b_obs.append(obs_t)
                    b_actions.append(actions)
                    b_rewards.append(reward)
                    b_dones.append(terminated | truncated)  # the time limit ends it too
                    b_valid.append(running.copy())
                    running &= ~(terminated | truncated)
                valid = torch.from_numpy(np.stack(b_valid))  # [time, env]
                rewards = env_major(torch.from_numpy(np.stack(b_rewards)), valid)
                dones = env_major(torch.from_numpy(np.stack(b_dones)), valid)
                batch = {
                    "obs": env_major(torch.stack(b_obs), valid),
                    "actions": env_major(torch.stack(b_actions), valid),
                    # 2. Returns-to-go of the n episodes laid end to end.
                    "returns": objective.returns(rewards, dones),
                }
                self.timesteps += int(valid.sum())

                # 3. One gradient step on −mean(log π · Ĝ).
                loss, stats = objective(self.policy, batch)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                self.updates += 1

                # 4. Log.
                lengths = valid.sum(dim=0).float()
                metrics = {
                    "timesteps": float(self.timesteps),
                    "episode_reward": float(rewards.sum() / n),
                    "episode_length": float(lengths.mean()),
                    **stats,
                }
                if not notify_metrics(callbacks, self, self.timesteps, metrics):
                    break
        finally:
            envs.close()
        return metrics

    # -- evaluation ------------------------------------------------------------------------
    def act(self, obs: np.ndarray) -> np.ndarray:
        """The deterministic (likeliest) action for each observation."""
        return self.policy.act(obs, deterministic=True)

    def evaluate(self, episodes: int | None = None, video: Path | None = None) -> Evaluation:
        """``episodes`` (default 10) deterministic episodes side by side; the course's
        ``Mean reward`` line."""
        episodes = 10 if episodes is None else episodes
        return evaluate_greedy(self.act, episodes, self.config.seed, self.config.threads, video)

    # -- checkpoints -----------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the policy, the optimizer, the counters and the RNG states into ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "sampler": self.sampler.get_state(),
            "rng": self.rng.bit_generator.state,
        }
        info = {
            "algo": self.config.algo,
            "config": asdict(self.config),
            "timesteps": self.timesteps,
            "updates": self.updates,
        }
        with written_whole(path / CHECKPOINT) as partial:
            torch.save(state, partial)
        write_json(path / TRAINER_JSON, info)

    @classmethod
    def load(cls, path: Path, settings: NativeConfig | None = None) -> NativeCartPoleTrainer:
        """Rebuild from ``save``'s folder, with ``settings`` (the run's; None: the saved ones)."""
        path = Path(path)
        try:
            info = json.loads((path / TRAINER_JSON).read_text())
            if settings is None:
                settings = make_config(info["algo"], **info["config"])
            trainer = cls(settings)
            state = torch.load(path / CHECKPOINT, weights_only=False)
            trainer.policy.load_state_dict(state["policy"])
            trainer.optimizer.load_state_dict(state["optimizer"])
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise UsageError(f"{path} holds no usable native checkpoint ({exc})") from None
        trainer.sampler.set_state(state["sampler"])
        trainer.rng.bit_generator.state = state["rng"]
        trainer.timesteps, trainer.updates = int(info["timesteps"]), int(info["updates"])
        return trainer
