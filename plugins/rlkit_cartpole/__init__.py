"""CartPole: the course's SB3 run and rlkit's native REINFORCE/PPO trainers, and the parts any
CartPole algorithm can build on.

Registered through the ``rlkit`` entry-point group like any third-party plugin. Nothing heavy
is imported here: the env, the trainers and their settings are named by import path and load
only when used, so ``rlkit --help`` stays instant. ``rlkit train cartpole`` itself (options,
progress, Ctrl-C, ``--resume``, the run directory) is the core's training session. This plugin
owns the task: its default, the course's SB3 PPO run, is declared here (``register_tasks``) and
stays the default whatever other plugins add to the task.

The public API for another plugin's CartPole algorithm (an A2C, a DQN, ...):

``rlkit_cartpole.env``
    ``make_env()`` one CartPole-v1 as the course makes it; ``make_vec_env(n)`` n of them
    stepped together by gymnasium's numpy implementation (next-step autoreset, see below);
    ``evaluate_greedy(act, episodes, seed, threads, video)`` the course's ``Mean reward: X +/- Y``
    evaluation (episodes side by side, optional GIF) that ``Trainer.evaluate`` can return;
    ``evaluate_actions`` its returns only; ``SOLVED`` (475), ``OBS_DIM`` (4), ``N_ACTIONS`` (2).
``rlkit_cartpole.rollout``
    ``Rollouts(num_envs, seed)`` collects ``[T, N]`` rollouts from the vectorized env and
    handles autoreset and the time limit: each ``Rollout`` has ``obs`` (with the state after
    the last step), ``actions``, ``rewards``, ``terminated``, ``truncated`` and ``valid`` (False
    on the autoreset steps, which are no experience), and the episodes that finished;
    ``gae_segments`` cuts a rollout into the 1-D segments the exercise's ``gae`` takes
    (bootstrapping from the true final state at a truncation); ``env_major`` flattens
    ``[T, N]`` to the valid steps, env by env.
``rlkit_cartpole.policy``
    ``CartPolePolicy(hidden=64, critic=True, activation="tanh")`` the course's actor-critic
    (two hidden layers, 4 inputs, 2 logits; ``logits``, ``value``, ``act``, ``log_prob``,
    ``entropy``); ``mlp`` its layers.
``rlkit_cartpole.runtime``
    ``torch_threads(n)``: train a 2×64 MLP on one CPU thread (the fastest by far).
``rlkit_cartpole.sb3``
    ``SB3Base``: a Stable-Baselines3 algorithm behind rlkit's Trainer (metrics forwarded every
    update, Ctrl-C, save/load, resume); the course's ``SB3Trainer`` and rlkit-dqn's
    ``SB3DQNTrainer`` are subclasses of a few lines.
"""

from __future__ import annotations

from rlkit import hookimpl
from rlkit.registry import EnvSpec, TaskSpec, TrainerSpec

TASK = "cartpole"
SETTINGS = "rlkit_cartpole.settings"
#: the first two share the headline panel: reward rising while entropy falls
SCISSORS = ("episode_reward", "entropy", "episode_length", "policy_loss")
HELP = """Train an agent to balance CartPole-v1, then print `Mean reward: X +/- Y`.

\b
  rlkit train cartpole                          the course's SB3 PPO run
  rlkit train cartpole --backend native         rlkit's PPO on the reference solutions
  rlkit train cartpole --algo reinforce --path my-work      your REINFORCE
  rlkit train cartpole --resume runs/cartpole-native-...    continue a run
"""
#: (backend, algorithm, trainer, settings, exercises, extra curves, description), in the order
#: help lists them; the task's default is declared in register_tasks
TRAINERS = (
    ("sb3", "ppo", "rlkit_cartpole.sb3:SB3Trainer", "SB3Config", (), ("value_loss", "approx_kl"),
     "Stable-Baselines3 with the course's settings"),
    ("sb3", "a2c", "rlkit_cartpole.sb3:SB3Trainer", "SB3Config", (), ("value_loss",),
     "Stable-Baselines3 with the course's settings"),
    ("native", "ppo", "rlkit_cartpole.native:NativeCartPoleTrainer", "PPOConfig", ("log_prob", "ppo"),
     ("value_loss", "approx_kl"), "rlkit's own loop on the exercise functions (--path: yours)"),
    ("native", "reinforce", "rlkit_cartpole.native:NativeCartPoleTrainer", "ReinforceConfig",
     ("log_prob", "reinforce"), (), "rlkit's own loop on the exercise functions (--path: yours)"),
)  # fmt: skip


@hookimpl
def register_envs(register):
    register(
        EnvSpec(
            "CartPole-v1",
            "rlkit_cartpole.env:make_env",
            "gymnasium CartPole-v1: balance a pole on a cart (500 steps max)",
        )
    )


@hookimpl
def register_tasks(register):
    # `rlkit train cartpole` with no --backend/--algo: the course's SB3 PPO run, whatever
    # other plugins add to the task
    register(TaskSpec(TASK, "sb3", "ppo", help=HELP))


@hookimpl
def register_trainers(register):
    for backend, algo, factory, settings, exercises, curves, description in TRAINERS:
        register(
            TrainerSpec(
                TASK,
                backend,
                factory,
                description,
                algorithms=(algo,),
                settings=f"{SETTINGS}:{settings}",
                exercises=exercises,
                plot_metrics=(*SCISSORS, *curves),
                x_metric="timesteps",
            )
        )
