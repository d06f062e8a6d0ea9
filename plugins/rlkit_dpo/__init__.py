"""DPO: the course's TRL run and rlkit's native DPO trainer on a small embedded LM."""
