"""The competitor of ``benchmarks/dqn.py --processes``: Stable-Baselines3's DQN on CartPole-v1 as
its users run it, a whole process from ``python`` to ``Mean reward``.

    python benchmarks/dqn_zoo_script.py [--seed 0] [--out DIR] [--threads 1]

rl-baselines3-zoo's tuned CartPole-v1 entry (``hyperparams/dqn.yml``, unchanged since commit
22e3ff2 and in rl_zoo3 2.9.2) over the zoo's own total, ``n_timesteps: 5e4``: its
``exploration_fraction: 0.16`` is a fraction of that total, so ε decays from 1 to 0.04 over the
first 8,000 steps, as the zoo tuned it. Then the model is saved and evaluated with SB3's own
``evaluate_policy`` (10 deterministic episodes), which prints the course's line.

The only departure from a plain script: ``--threads 1`` (the default here) pins torch to one
CPU thread, SB3's fastest on the 2-core benchmark machine (its default, one thread per core,
is slower there); ``--threads 0`` leaves torch's default.
"""

from __future__ import annotations

import argparse

ZOO_N_TIMESTEPS = 50_000
ZOO_CARTPOLE = {
    "learning_rate": 2.3e-3,
    "batch_size": 64,
    "buffer_size": 100_000,
    "learning_starts": 1_000,
    "gamma": 0.99,
    "target_update_interval": 10,
    "train_freq": 256,
    "gradient_steps": 128,
    "exploration_fraction": 0.16,
    "exploration_final_eps": 0.04,
    "policy_kwargs": {"net_arch": [256, 256]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="dqn_cartpole", help="where the model is saved")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: default)")
    args = parser.parse_args()

    import gymnasium as gym
    import torch
    from stable_baselines3 import DQN
    from stable_baselines3.common.evaluation import evaluate_policy

    if args.threads:
        torch.set_num_threads(args.threads)
    model = DQN("MlpPolicy", gym.make("CartPole-v1"), seed=args.seed, verbose=0, **ZOO_CARTPOLE)
    model.learn(total_timesteps=ZOO_N_TIMESTEPS)
    model.save(args.out)
    mean, std = evaluate_policy(model, model.get_env(), n_eval_episodes=10, deterministic=True)
    print(f"Mean reward: {mean:.2f} +/- {std:.2f}")


if __name__ == "__main__":
    main()
