"""The checking engine: checks per exercise (``grader.checks``), the sandbox that runs student
code (``grader.sandbox`` + ``grader.runner``), verdicts (``grader.judges``), reports, and the
stored public test vectors (``grader.store``). Entry points are in ``grader.api``."""

from grader.api import check_function, check_module, check_workspace

__all__ = ["check_function", "check_module", "check_workspace"]
