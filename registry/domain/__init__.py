"""Bounded contexts: each has controllers -> services -> repositories (STYLE.md)."""
