"""The only code mounted inside the sandbox (at ``/rlkit``, beside ``protocol.py`` and
``executor.py``), one file per job:

* ``launcher.py``: as root, stages the read-only sources, drops to nobody, execs bubblewrap;
* ``isolation.py``: a worker's namespaces, every private mount, dropped capabilities;
* ``limits.py``: the limits, defined once (the parent imports them from here too);
* ``runner.py``: the trusted process that talks to the parent and polices the workers, and the
  zygote, forked before any submission is read, from which every worker is forked;
* ``worker.py``: one worker: read its own job, isolate, import the student's module, run calls.

These files import nothing of rlkit by package name: inside the sandbox they are plain modules.
"""
