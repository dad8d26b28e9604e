"""A log entry's document: what every reader of the log parses, and what it refuses."""

from __future__ import annotations

import pytest

from registry.domain.log.services import LogEntry
from registry.errors import LogIntegrityError


def test_an_entry_is_read_as_the_object_the_registry_logged() -> None:
    entry = LogEntry(7, "policy.changed", b'{"kind":"policy.changed","version":"3"}')
    assert entry.document() == {"kind": "policy.changed", "version": "3"}


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"[]", "not a JSON object"),
        (b'"a string"', "not a JSON object"),
        (b"{not json", "not JSON"),
        (b'{"a":1,"a":2}', "not JSON"),  # a duplicate key: two readers could disagree
        (b"[" * 200 + b"]" * 200, "not JSON"),  # deeper than any entry the registry writes
    ],
)
def test_an_entry_another_writer_appended_is_a_log_integrity_error(raw: bytes, why: str) -> None:
    """Unsealed entries can be appended by anyone who can write the database: a reader
    answers 503 log-integrity naming the entry, never a 500."""
    with pytest.raises(LogIntegrityError, match=f"log entry 7 is {why}"):
        LogEntry(7, "attestation.accepted", raw).document()
