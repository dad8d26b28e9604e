"""Fixtures the client tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_registry import LyingAnswer, lying_registry


@pytest.fixture
def liar() -> Iterator[tuple[str, dict[str, LyingAnswer]]]:
    """A lying registry's URL and the answers it serves (the test fills them in)."""
    with lying_registry() as served:
        yield served
