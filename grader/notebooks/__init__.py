"""nbgrader notebooks built from the exercises themselves (``rlkit nbgrader build``).

* ``source``: the stub and the reference solution cut into the pieces a notebook needs.
* ``teaching``: the stub's docstrings as markdown, every formula restated in LaTeX with its
  condition, each function's key equation first.
* ``build``: one exercise → one nbgrader source notebook (answer cells, visible and hidden tests).
* ``course``: a course folder nbgrader works in (``nbgrader_config.py``, ``source/<assignment>/``).
* ``feedback``: what the test cells run in the student's kernel (and an IPython extension that
  notices cells that failed or never finished).
* ``nbgrader_steps``: nbgrader's own steps adjusted for these courses (named in the course's
  ``nbgrader_config.py``): hidden test cells restored without a false checksum warning.

Nothing here keeps a second copy of an exercise: every cell is derived from the registered stub,
solution and stored checks, so a notebook cannot drift from ``rlkit check``.
"""
