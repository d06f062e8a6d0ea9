"""Reference solutions of the exercises (instructors only; never shipped to students)."""
