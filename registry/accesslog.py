"""uvicorn's access log without routine lines: a worker's empty job claims.

An idle worker asks for a job every few seconds (or every ``wait_seconds`` with a
long poll) and is told ``204``: one access line each filled ``./scripts/serve``'s
console. Those lines are dropped; a claim that leases a job (200) and every error
are still logged. ``/metrics`` counts every claim whatever the log shows
(``reliquary_http_requests_total{route="/v1/jobs/claim",status="204"}``).
"""

from __future__ import annotations

import logging

ACCESS_LOGGER = "uvicorn.access"
ROUTINE = {("POST", "/v1/jobs/claim", 204)}  # (method, path, status) never logged


class RoutineRequestFilter(logging.Filter):
    """Drops uvicorn access records of ``ROUTINE`` requests.

    uvicorn logs ``'%s - "%s %s HTTP/%s" %d'`` with args (client, method, path with
    query, HTTP version, status); anything else passes untouched.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            _, method, path, _, status = args
            return (method, path, status) not in ROUTINE
        return True


def quiet_routine_requests() -> None:
    """Install the filter on uvicorn's access logger (once per process)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RoutineRequestFilter) for f in logger.filters):
        logger.addFilter(RoutineRequestFilter())
