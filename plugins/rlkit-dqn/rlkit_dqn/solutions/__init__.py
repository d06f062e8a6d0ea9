"""The DQN reference solution (instructors; `rlkit release` never ships it)."""
