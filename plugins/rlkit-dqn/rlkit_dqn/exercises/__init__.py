"""The DQN exercise stub students fill in (`rlkit init` copies it as dqn.py)."""
