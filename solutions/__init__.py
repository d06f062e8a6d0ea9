"""rlkit-solutions (import name ``rlkit_solutions``): the course's reference solutions, its
classic mistakes and correct alternatives (``mistakes``) and the hidden checks' vectors beside
each solution. Instructors only: a student's install never holds them (see pyproject.toml)."""
