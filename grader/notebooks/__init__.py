"""nbgrader notebooks built from the exercises themselves (``rlkit nbgrader build``).

* ``source``: the stub and the reference solution cut into the pieces a notebook needs.
* ``teaching``: the stub's docstrings as markdown, with a LaTeX summary of their formulas.
* ``build``: one exercise → one nbgrader source notebook (answer cells, visible and hidden tests).
* ``course``: a course folder nbgrader works in (``nbgrader_config.py``, ``source/<assignment>/``).
* ``feedback``: what the test cells run in the student's kernel (and an IPython extension that
  notices cells that failed or never finished).

Nothing here keeps a second copy of an exercise: every cell is derived from the registered stub,
solution and stored checks, so a notebook cannot drift from ``rlkit check``.
"""
