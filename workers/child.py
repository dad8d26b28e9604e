"""One reference run in a fresh process: ``python -m workers.child PROFILE MODEL INPUTS RUNTIME OUT``.

Writes into OUT either ``outputs.bin`` (the canonical output encoding) and
``about.json`` (engine, device, determinism settings applied, decoded values), exit 0;
or ``refusal.json`` (reason, retry, nondeterministic), exit 3. Any other exit is a crash
whose stderr the parent reports.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from registry.core.outputs import encode_outputs, output_values
from workers.errors import Refusal

REFUSED = 3


def main(argv: list[str]) -> int:
    profile, model, inputs, runtime_json, out = argv
    out_dir = Path(out)
    runtime = json.loads(runtime_json)
    try:
        if profile == "cpu-tensorflow":
            from workers.engines import tensorflow

            tensors, about = tensorflow.run(Path(model), Path(inputs), runtime)
        elif profile in ("cpu-vllm", "cuda-vllm"):
            from workers.engines import vllm

            tensors, about = vllm.run(
                Path(model), Path(inputs), runtime, cuda=profile == "cuda-vllm"
            )
        else:
            raise Refusal(f"unknown profile {profile!r}")
    except Refusal as refusal:
        (out_dir / "refusal.json").write_text(
            json.dumps(
                {
                    "reason": refusal.reason,
                    "retry": refusal.retry,
                    "nondeterministic": refusal.nondeterministic,
                }
            )
        )
        return REFUSED
    (out_dir / "outputs.bin").write_bytes(encode_outputs(tensors))
    about["values"] = output_values(tensors)
    (out_dir / "about.json").write_text(json.dumps(about))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
