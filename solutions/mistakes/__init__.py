"""The course's classic mistakes and correct alternatives, one module per exercise
(``MISTAKES``, ``ALTERNATIVES``), registered with the exercise (``Exercise(mistakes=...)``).

``rlkit vectors --regenerate`` records how each mistake behaves so ``rlkit check`` can name it;
``tests/test_exercise_mistakes.py`` proves every mistake is caught and named and every
alternative passes. A plugin ships its own the same way.
"""
