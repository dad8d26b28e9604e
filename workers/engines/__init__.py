"""Inference engines a worker runs inside a fresh child process (``workers.child``).

Each engine module is imported only in the child and only for its profile, so a
worker installs just what its profile needs. An engine's ``run`` applies its
determinism controls before anything else and raises ``Refusal`` when it cannot.
"""
