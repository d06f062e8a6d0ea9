"""rlkit-dqn's answers, for instructors: the reference solution (``dqn``), the classic mistakes
and correct alternatives (``mistakes``) and the hidden checks' vectors beside ``dqn.py``."""
