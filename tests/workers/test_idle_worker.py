"""An idle worker, as ``./scripts/serve`` runs one: it long-polls for jobs (a claim every
``--wait`` seconds, not every ``--poll``) and stops at once when told to."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable

import httpx
import pytest

from tests.support.workers import Registry

pytestmark = pytest.mark.slow
POLICY = b"""
[channels.production]
reproducibility = [{ profile = "cpu-tensorflow", min_workers = 1 }]
"""


def idle_claims(reg: Registry) -> float:
    metrics = httpx.get(f"{reg.server.url}/metrics").text
    found = re.search(
        r'reliquary_http_requests_total\{method="POST",route="/v1/jobs/claim",status="204"\} (\S+)',
        metrics,
    )
    return 0.0 if found is None else float(found.group(1))


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
def test_an_idle_worker_waits_on_one_claim_and_stops_at_once(
    start_registry: Callable[..., Registry],
) -> None:
    reg = start_registry(POLICY)
    worker = reg.worker("--wait", "20")  # the fixture also passes --poll 0.5
    reg.wait_for(lambda: "serving cpu-tensorflow" in reg.log_of(0), timeout=60)
    time.sleep(3)
    assert worker.poll() is None, reg.log_of(0)
    assert idle_claims(reg) == 0  # one claim is still waiting; polling would have made ~6
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, reg.log_of(0)
    assert time.monotonic() - started < 3  # not after the rest of the 20 s wait
    assert "stopped after 0 job(s)" in reg.log_of(0)
