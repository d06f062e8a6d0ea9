"""CartPole: the course's SB3 run and rlkit's native REINFORCE/PPO trainers."""
