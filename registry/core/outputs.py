"""The canonical encoding of a run's outputs, the bytes whose blake3 is an output digest.

Encoding (ARCHITECTURE §7)::

    b"reliquary.outputs.v1\\n"
    for each tensor, sorted by name:
        canonical JSON {"dtype": …, "name": …, "nbytes": n, "shape": […]} b"\\n"
        n bytes: the values, C order, little-endian

LLM outputs are tensors too: the token ids of prompt i are the int64 tensor
``tokens/<i:05d>`` of shape ``[len]``. So one encoding, one digest rule, and one
comparison serve every engine.

Invariants: a ``Tensor``'s bytes always fit its dtype and shape; output names in one
encoding are unique; decoded values (``output_values``, carried in a
``reproducibility/v1`` predicate for cross-profile comparison) are finite and at most
``MAX_VALUES`` in all.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from registry.core.canonical import canonical_bytes
from registry.core.errors import CoreError

MAGIC = b"reliquary.outputs.v1\n"
MAX_VALUES = 4096  # decoded values carried in a predicate, for cross-profile comparison

_FORMATS: dict[str, str] = {
    "float16": "e",
    "float32": "f",
    "float64": "d",
    "int8": "b",
    "int16": "h",
    "int32": "i",
    "int64": "q",
    "uint8": "B",
    "uint16": "H",
    "uint32": "I",
    "uint64": "Q",
    "bool": "?",
}
DTYPES = frozenset(_FORMATS)


@dataclass(frozen=True, slots=True)
class Tensor:
    """One named output: its dtype (numpy name), shape and little-endian C-order bytes."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    data: bytes

    def __post_init__(self) -> None:
        if self.dtype not in _FORMATS:
            raise CoreError(
                f"output {self.name!r}: dtype {self.dtype!r} is not one of {sorted(DTYPES)}"
            )
        count = math.prod(self.shape)
        if len(self.data) != count * struct.calcsize("<" + _FORMATS[self.dtype]):
            raise CoreError(
                f"output {self.name!r}: {len(self.data)} bytes do not fit shape {self.shape}"
            )

    def values(self) -> list[float | int | bool]:
        fmt = _FORMATS[self.dtype]
        count = math.prod(self.shape)
        return list(struct.unpack(f"<{count}{fmt}", self.data))


def encode_outputs(tensors: Iterable[Tensor]) -> bytes:
    """The canonical encoding of a run's outputs. Raises CoreError on duplicate names."""
    ordered = sorted(tensors, key=lambda t: t.name)
    names = [t.name for t in ordered]
    if len(set(names)) != len(names):
        raise CoreError("output names must be unique")
    parts = [MAGIC]
    for t in ordered:
        header = {"dtype": t.dtype, "name": t.name, "nbytes": len(t.data), "shape": list(t.shape)}
        parts += [canonical_bytes(header), b"\n", t.data]
    return b"".join(parts)


def token_tensors(token_ids: Iterable[Iterable[int]]) -> list[Tensor]:
    """An LLM's outputs as tensors: one int64 tensor ``tokens/<i>`` per prompt."""
    out = []
    for i, ids in enumerate(token_ids):
        seq = [int(t) for t in ids]
        out.append(
            Tensor(f"tokens/{i:05d}", "int64", (len(seq),), struct.pack(f"<{len(seq)}q", *seq))
        )
    return out


def output_values(tensors: Iterable[Tensor]) -> dict[str, Any] | None:
    """Decoded values for the predicate, or None when there are more than MAX_VALUES."""
    tensors = list(tensors)
    if sum(math.prod(t.shape) for t in tensors) > MAX_VALUES:
        return None
    values: dict[str, Any] = {}
    for t in tensors:
        decoded = t.values()
        if any(isinstance(v, float) and not math.isfinite(v) for v in decoded):
            return None  # JSON has no NaN/inf; the digests still compare them bit for bit
        values[t.name] = {"dtype": t.dtype, "shape": list(t.shape), "values": decoded}
    return values
