"""Inference engines a worker runs inside a fresh child process (``workers.child``).

Each engine module is imported only in the child and only for its profile, so a
worker installs just what its profile needs. An engine's ``run`` applies its
determinism controls before anything else and raises ``Refusal`` when it cannot.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from workers.errors import Refusal

PINNED = {"PYTHONHASHSEED": "0", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
"""Set in every run's fresh process by every profile (``ENV`` of each engine), and checked
there (``pinned_controls``): hash order and BLAS thread counts change float results."""


def pinned_controls(*, also: dict[str, str] | None = None) -> dict[str, Any]:
    """The pinned environment controls (and ``also``) as this process sees them, for the
    statement's ``determinism``. PYTHONHASHSEED only takes effect when set before the
    interpreter starts, so hash randomization itself is checked.

    Raises:
        Refusal: (retried: the worker sets them, so a process without them is the
            worker's fault, not the model's) a control is not applied.
    """
    wanted = PINNED | (also or {})
    missing = [f"{k}={v}" for k, v in wanted.items() if os.environ.get(k) != v]
    if sys.flags.hash_randomization and "PYTHONHASHSEED=0" not in missing:
        missing.append("PYTHONHASHSEED=0 (hash randomization is on in this interpreter)")
    if missing:
        raise Refusal(
            f"determinism controls not applied in the run's process: {', '.join(missing)}; "
            "the worker sets them in the child's environment: run it through reliquary-worker",
            retry=True,
        )
    return {
        "pythonhashseed": PINNED["PYTHONHASHSEED"],
        "mkl_num_threads": int(PINNED["MKL_NUM_THREADS"]),
        "openblas_num_threads": int(PINNED["OPENBLAS_NUM_THREADS"]),
    }
