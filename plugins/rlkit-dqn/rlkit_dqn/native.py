"""rlkit's own DQN on CartPole, built on the exercise functions, top to bottom (CleanRL style).

    settings (a dataclass)  →  Q-network and its target copy  →  replay buffer  →  the loop:
        act ε-greedily in num_envs CartPoles at once (one batched forward pass per step)
        store each transition (s, a, r, s', terminated) in the replay buffer
        every train_every steps: sample a minibatch,
            y = td_target(r, Q_target(s'), terminated, γ)                   (DQN)
              or double_dqn_target(r, Q(s'), Q_target(s'), terminated, γ)   (Double DQN)
            loss = dqn_loss(Q(s), a, y); one Adam step
        every target_every gradient steps: copy Q into Q_target
        log reward, loss, ε and mean Q

``td_target``, ``double_dqn_target`` and ``dqn_loss`` come from the reference solution, or from
the student's ``dqn.py`` (``impl="student"``): their DQN balances the pole.

Truncation. CartPole cuts episodes at 500 steps. A cut episode did not *end*: the state after
it still has value, so the transition is stored with ``terminated`` false and the target
bootstraps from it. Gymnasium's vectorized CartPole returns the true final state at the cutting
step (next-step autoreset); the step after it, which only resets that env, is no transition
and is not stored.

Speed. A 2×64 Q-network is tiny: one CPU thread is fastest, and what costs is per-step Python
overhead. So the replay buffer is preallocated torch tensors, sampling is one ``randint``,
several envs are stepped at once, and logging happens once every ``log_every`` steps. Adam is
written out below (``Adam``) on one flat tensor that holds every weight: its step is seven
tensor operations, and a run never imports ``torch.optim``, whose optimizers import
``torch._dynamo`` (a second or two of start-up) as they are built.

Seeding. ``seed`` fixes the networks' initialization, the exploration (a private torch
Generator), the minibatch sampling and the environments' starting states.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import torch
from rlkit import interfaces
from rlkit.errors import UsageError
from rlkit.interfaces import Callback, Evaluation, Trainer, notify_metrics
from rlkit.runs import write_json, written_whole
from rlkit_cartpole.runtime import torch_threads
from torch import nn

from rlkit_dqn.settings import DQNSettings

CHECKPOINT = "checkpoint.pt"
TRAINER_JSON = "trainer.json"
OBS_DIM, N_ACTIONS = 4, 2


def q_network(hidden: int) -> nn.Sequential:
    """Q(s, ·): 4 state numbers in, one value per action out."""
    return nn.Sequential(
        nn.Linear(OBS_DIM, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, N_ACTIONS),
    )


class Adam:
    """``torch.optim.Adam(params, lr)`` (betas 0.9 and 0.999, eps 1e-8, no weight decay),
    written out: the same arithmetic as its ``foreach=False`` path, on one flat tensor.

    The parameters are moved into one contiguous tensor (each parameter becomes a view of it)
    and their gradients into another, so a step is seven operations on 4,610 numbers for the
    2×64 Q-network instead of a loop over six tensors. Gradients accumulate in place into the
    flat tensor (``backward`` adds into an existing ``.grad``); ``zero_grad`` zeroes it. (So
    the network must not be moved or cast afterwards: ``.to()`` would make new parameters.)

    Not ``torch.optim.Adam``: building any ``torch.optim`` optimizer imports ``torch._dynamo``
    (``Optimizer.add_param_group`` is wrapped in ``torch._disable_dynamo``, whatever
    ``foreach``/``fused`` say), a second or two of every run's start-up. ``state_dict`` keeps
    ``torch.optim.Adam``'s format, so checkpoints written by either load into this one.
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        sizes = [p.numel() for p in self.params]
        self.flat = torch.cat([p.detach().reshape(-1) for p in self.params])
        self.grad = torch.zeros_like(self.flat)
        self.slices: list[slice] = []
        start = 0
        for p, n in zip(self.params, sizes):
            span = slice(start, start + n)
            p.data = self.flat[span].view_as(p)
            p.grad = self.grad[span].view_as(p)
            self.slices.append(span)
            start += n
        self.exp_avg = torch.zeros_like(self.flat)
        self.exp_avg_sq = torch.zeros_like(self.flat)
        self.denom = torch.empty_like(self.flat)
        self.steps = 0

    def zero_grad(self) -> None:
        self.grad.zero_()

    def step(self) -> None:
        """m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
        θ ← θ − lr/(1−β1ᵗ) · m / (√v / √(1−β2ᵗ) + eps)."""
        beta1, beta2 = self.betas
        self.steps += 1
        step = float(self.steps)
        self.exp_avg.lerp_(self.grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(self.grad, self.grad, value=1 - beta2)
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        torch.sqrt(self.exp_avg_sq, out=self.denom).div_(bias_correction2_sqrt).add_(self.eps)
        self.flat.addcdiv_(self.exp_avg, self.denom, value=-self.lr / (1 - beta1**step))

    def state_dict(self) -> dict[str, Any]:
        """As ``torch.optim.Adam.state_dict()`` writes it (per parameter, by index)."""
        state = {}
        if self.steps:
            for i, (p, span) in enumerate(zip(self.params, self.slices)):
                state[i] = {
                    "step": torch.tensor(float(self.steps)),
                    "exp_avg": self.exp_avg[span].view_as(p).clone(),
                    "exp_avg_sq": self.exp_avg_sq[span].view_as(p).clone(),
                }
        group = {
            "lr": self.lr,
            "betas": self.betas,
            "eps": self.eps,
            "weight_decay": 0.0,
            "amsgrad": False,
            "params": list(range(len(self.params))),
        }
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """From ``state_dict`` or ``torch.optim.Adam.state_dict()`` (older checkpoints)."""
        group = state_dict["param_groups"][0]
        if len(group["params"]) != len(self.params):
            raise ValueError(f"{len(group['params'])} parameters saved, {len(self.params)} here")
        self.lr, self.betas, self.eps = group["lr"], tuple(group["betas"]), group["eps"]
        saved = state_dict["state"]
        self.steps = int(saved[group["params"][0]]["step"]) if saved else 0
        self.exp_avg.zero_()
        self.exp_avg_sq.zero_()
        for key, span in zip(group["params"], self.slices):
            if key in saved:
                self.exp_avg[span] = saved[key]["exp_avg"].reshape(-1)
                self.exp_avg_sq[span] = saved[key]["exp_avg_sq"].reshape(-1)


class ReplayBuffer:
    """The last ``size`` transitions in preallocated tensors (a ring); uniform sampling."""

    def __init__(self, size: int) -> None:
        self.size, self.pos, self.full = size, 0, False
        self.obs = torch.zeros(size, OBS_DIM)
        self.next_obs = torch.zeros(size, OBS_DIM)
        self.actions = torch.zeros(size, dtype=torch.long)
        self.rewards = torch.zeros(size)
        self.terminated = torch.zeros(size, dtype=torch.bool)

    def __len__(self) -> int:
        return self.size if self.full else self.pos

    def add(self, obs, actions, rewards, next_obs, terminated) -> None:
        """Store a batch of transitions (tensors with a leading batch dimension)."""
        n = len(actions)
        idx = (torch.arange(n) + self.pos) % self.size
        self.obs[idx], self.next_obs[idx] = obs, next_obs
        self.actions[idx], self.rewards[idx], self.terminated[idx] = actions, rewards, terminated
        self.full = self.full or self.pos + n >= self.size
        self.pos = (self.pos + n) % self.size

    def sample(self, batch: int, generator: torch.Generator) -> SimpleNamespace:
        idx = torch.randint(len(self), (batch,), generator=generator)
        return SimpleNamespace(
            obs=self.obs[idx],
            actions=self.actions[idx],
            rewards=self.rewards[idx],
            next_obs=self.next_obs[idx],
            terminated=self.terminated[idx],
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in ("obs", "next_obs", "actions", "rewards", "terminated", "pos", "full")
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)


class DQNTrainer(Trainer):
    """DQN (or Double DQN) on CartPole-v1 with the exercise functions (solution or student)."""

    task: ClassVar[str] = "cartpole"
    backend: ClassVar[str] = "native"
    records_video: ClassVar[bool] = True  # CartPole renders: `rlkit eval RUN --video a.gif`

    def __init__(self, settings: DQNSettings) -> None:
        self.settings = config = settings
        with torch.random.fork_rng(devices=[]):  # seed the initialization, not the world
            torch.manual_seed(config.seed)
            self.q = q_network(config.hidden)
        self.q_target = q_network(config.hidden)
        self.q_target.load_state_dict(self.q.state_dict())
        self.q_target.requires_grad_(False)
        self.optimizer = Adam(self.q.parameters(), lr=config.learning_rate)
        self.buffer = ReplayBuffer(config.buffer_size)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.timesteps = 0
        self.updates = 0
        self._due = 0  # environment steps not yet paid for with gradient steps
        self._fns: SimpleNamespace | None = None

    @property
    def fns(self) -> SimpleNamespace:
        """The exercise functions, loaded on first use (evaluating a run needs no workspace)."""
        if self._fns is None:
            from rlkit.impl import load_exercise_functions

            c = self.settings
            self._fns = load_exercise_functions("dqn", c.impl, Path(c.path) if c.path else None)
        return self._fns

    def before_training(self) -> None:
        """The exercise functions now, before the run directory exists: a missing reference
        (a student's install) or workspace fails in one line and leaves no run behind."""
        self._fns = self.fns

    # -- training --------------------------------------------------------------------------
    def progress(self) -> interfaces.Progress:
        return interfaces.Progress(self.timesteps, self.settings.timesteps, "step")

    def train(self, callbacks: Sequence[Callback] = ()) -> dict[str, float]:
        """Train until ``settings.timesteps`` environment steps in total, or until a callback
        or ``request_stop`` (Ctrl-C) stops it at the next metrics row."""
        self._try_functions()  # a stub or a broken dqn.py fails here, before any step
        for callback in callbacks:
            callback.on_train_start(self)
        with torch_threads(self.settings.threads):
            last = self._loop(callbacks)
        for callback in callbacks:
            callback.on_train_end(self)
        return {"timesteps": float(self.timesteps), "updates": float(self.updates), **last}

    def _try_functions(self) -> None:
        """Call the exercise functions once on a tiny batch: a stub still raising
        NotImplementedError stops the run at once with one line, not after the warm-up."""
        fns, q = self.fns, torch.zeros(2, N_ACTIONS)
        rewards, dones = torch.zeros(2), torch.tensor([False, True])
        if self.settings.double_dqn:
            targets = fns.double_dqn_target(rewards, q, q, dones, self.settings.gamma)
        else:
            targets = fns.td_target(rewards, q, dones, self.settings.gamma)
        fns.dqn_loss(q.requires_grad_(), torch.zeros(2, dtype=torch.long), targets)

    def _loop(self, callbacks: Sequence[Callback]) -> dict[str, float]:
        from rlkit_cartpole.env import make_vec_env

        c, fns = self.settings, self.fns
        n = c.num_envs
        envs = make_vec_env(n)
        obs_np, _ = envs.reset(seed=c.seed + self.timesteps)
        obs = torch.from_numpy(obs_np)
        prev_done = torch.zeros(n, dtype=torch.bool)  # the env's next step only resets it
        ep_return = np.zeros(n)
        finished: list[float] = []
        losses: list[torch.Tensor] = []
        q_means: list[torch.Tensor] = []
        next_log = self.timesteps + c.log_every
        next_eval = self.timesteps + c.eval_every
        metrics: dict[str, float] = {}
        try:
            while self.timesteps < c.timesteps:
                # 1. Act ε-greedily in every env: one batched forward pass.
                epsilon = c.epsilon(self.timesteps)
                with torch.no_grad():
                    actions = self.q(obs).argmax(dim=-1)
                explore = torch.rand(n, generator=self.generator) < epsilon
                if explore.any():
                    random = torch.randint(N_ACTIONS, (n,), generator=self.generator)
                    actions = torch.where(explore, random, actions)
                next_np, reward, terminated, truncated, _ = envs.step(actions.numpy())
                next_obs = torch.from_numpy(next_np)

                # 2. Store the real transitions (not the steps that only reset an env).
                valid = ~prev_done
                term = torch.from_numpy(terminated)
                rew = torch.from_numpy(reward).float()
                if valid.all():
                    self.buffer.add(obs, actions, rew, next_obs, term)
                else:
                    self.buffer.add(
                        obs[valid], actions[valid], rew[valid], next_obs[valid], term[valid]
                    )
                done = terminated | truncated
                ep_return += reward * valid.numpy()
                if done.any():
                    finished.extend(ep_return[done].tolist())
                    ep_return[done] = 0.0
                prev_done = torch.from_numpy(done)
                obs = next_obs
                self.timesteps += n

                # 3. Learn from a replayed minibatch.
                if self.timesteps >= c.learning_starts and len(self.buffer) >= c.batch_size:
                    self._due += n
                    while self._due >= c.train_every:
                        self._due -= c.train_every
                        loss, q_mean = self._update(fns)
                        losses.append(loss)
                        q_means.append(q_mean)

                # 4. Log.
                if self.timesteps >= next_log or self.timesteps >= c.timesteps:
                    next_log = self.timesteps + c.log_every
                    metrics = {"timesteps": float(self.timesteps), "epsilon": epsilon}
                    if finished:
                        metrics["episode_reward"] = float(np.mean(finished))
                        finished = []
                    if losses:
                        metrics["loss"] = float(torch.stack(losses).mean())
                        metrics["q_mean"] = float(torch.stack(q_means).mean())
                        losses, q_means = [], []
                    solved = False
                    if c.stop_reward > 0 and self.timesteps >= next_eval:
                        next_eval = self.timesteps + c.eval_every
                        mean = self._greedy_mean()
                        metrics["eval_reward"] = mean
                        solved = mean >= c.stop_reward
                    if not notify_metrics(callbacks, self, self.timesteps, metrics) or solved:
                        break
        finally:
            envs.close()
        return metrics

    def _update(self, fns: SimpleNamespace) -> tuple[torch.Tensor, torch.Tensor]:
        """One gradient step of dqn_loss on a replayed minibatch; the target network follows."""
        c = self.settings
        batch = self.buffer.sample(c.batch_size, self.generator)
        with torch.no_grad():
            next_q_target = self.q_target(batch.next_obs)
        if c.double_dqn:  # Q(s) and Q(s') in one forward pass; Q(s') only chooses a'
            q_both = self.q(torch.cat([batch.obs, batch.next_obs]))
            q_values, next_q_online = q_both[: c.batch_size], q_both[c.batch_size :].detach()
            targets = fns.double_dqn_target(
                batch.rewards, next_q_online, next_q_target, batch.terminated, c.gamma
            )
        else:
            targets = fns.td_target(batch.rewards, next_q_target, batch.terminated, c.gamma)
            q_values = self.q(batch.obs)
        loss = fns.dqn_loss(q_values, batch.actions, targets)
        self.optimizer.zero_grad()
        loss.backward()
        if c.max_grad_norm > 0:
            nn.utils.clip_grad_norm_(self.q.parameters(), c.max_grad_norm)
        self.optimizer.step()
        self.updates += 1
        if self.updates % c.target_every == 0:
            with torch.no_grad():
                for target, online in zip(self.q_target.parameters(), self.q.parameters()):
                    target.copy_(online)
        return loss.detach(), q_values.detach().mean()

    def _greedy_mean(self) -> float:
        """The mean return of the greedy policy over ``eval_episodes`` episodes (the same
        episodes as ``evaluate``, so a run that stopped here evaluates to the same number)."""
        from rlkit_cartpole.env import evaluate_actions

        episodes = self.settings.eval_episodes or 10
        return float(evaluate_actions(self.act, episodes, seed=10_000 + self.settings.seed).mean())

    # -- evaluation ------------------------------------------------------------------------
    def act(self, obs: np.ndarray) -> np.ndarray:
        """The greedy action argmax_a Q(s, a) for each observation."""
        with torch.no_grad():
            return self.q(torch.as_tensor(obs, dtype=torch.float32)).argmax(dim=-1).numpy()

    def evaluate(self, episodes: int | None = None, video: Path | None = None) -> Evaluation:
        """``episodes`` (default 10) greedy episodes side by side; the course's line
        ``Mean reward: X +/- Y``."""
        episodes = episodes or 10
        from rlkit_cartpole.env import evaluate_greedy

        return evaluate_greedy(self.act, episodes, self.settings.seed, self.settings.threads, video)

    # -- checkpoints -----------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Write the networks, the optimizer, the replay buffer, the counters and the RNG."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {
            "q": self.q.state_dict(),
            "q_target": self.q_target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "buffer": self.buffer.state_dict(),
            "generator": self.generator.get_state(),
        }
        info = {
            "algo": DQNSettings.algo,
            "config": asdict(self.settings),
            "timesteps": self.timesteps,
            "updates": self.updates,
            "due": self._due,
        }
        with written_whole(path / CHECKPOINT) as partial:
            torch.save(state, partial)
        write_json(path / TRAINER_JSON, info)

    @classmethod
    def load(cls, model_dir: Path, settings: DQNSettings | None = None) -> DQNTrainer:
        """Rebuild from ``save``'s folder with ``settings`` (None: the saved ones)."""
        path = Path(model_dir)
        try:
            info = json.loads((path / TRAINER_JSON).read_text())
            trainer = cls(settings or DQNSettings(**info["config"]))
            state = torch.load(path / CHECKPOINT, weights_only=False)
            trainer.q.load_state_dict(state["q"])
            trainer.q_target.load_state_dict(state["q_target"])
            trainer.optimizer.load_state_dict(state["optimizer"])
            trainer.buffer.load_state_dict(state["buffer"])
            trainer.generator.set_state(state["generator"])
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise UsageError(f"{path} holds no usable native DQN checkpoint ({exc})") from None
        trainer.timesteps, trainer.updates = int(info["timesteps"]), int(info["updates"])
        trainer._due = int(info.get("due", 0))
        return trainer
