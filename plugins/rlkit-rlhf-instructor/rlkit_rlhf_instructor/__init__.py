"""rlkit-rlhf's answers, for instructors: the reference solution (``rlhf``), the classic mistakes
and correct alternatives (``mistakes``) and the hidden checks' vectors beside ``rlhf.py``."""
