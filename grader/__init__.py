"""The checking engine: checks per exercise (``rlkit_grader.checks``), the sandbox that runs student
code (``rlkit_grader.sandbox`` + ``rlkit_grader.runner``), verdicts (``rlkit_grader.judges``), reports, and the
stored public test vectors (``rlkit_grader.store``). Entry points are in ``rlkit_grader.api``."""

from rlkit_grader.api import check_function, check_module, check_workspace

__all__ = ["check_function", "check_module", "check_workspace"]
