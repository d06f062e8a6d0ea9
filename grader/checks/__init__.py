"""The course's checks, one module per exercise (``CHECKS: list[Check]``), each with its stored
vectors beside it (``<exercise>.vectors.json`` + ``.npz``, from ``rlkit vectors --regenerate``).
These modules import numpy only: the grader judges without torch."""
