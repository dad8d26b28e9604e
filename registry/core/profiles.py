"""Verification profiles and the manifest engines each can run."""

from __future__ import annotations

PROFILE_ENGINES: dict[str, frozenset[str]] = {
    "cpu-tensorflow": frozenset({"tensorflow-savedmodel"}),
    "cpu-vllm": frozenset({"vllm"}),
    "cuda-vllm": frozenset({"vllm"}),
}


LLM_PROFILES = frozenset(p for p, engines in PROFILE_ENGINES.items() if "vllm" in engines)
"""Profiles whose models are LLMs: they generate tokens from prompts (text datasets)."""


def runs(profile: str, engine: str | None) -> bool:
    """True when ``profile`` can run an artifact whose runtime engine is ``engine``."""
    return engine is not None and engine in PROFILE_ENGINES.get(profile, frozenset())
