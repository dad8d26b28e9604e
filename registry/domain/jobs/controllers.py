"""The job lease protocol for workers, and verification requests for everyone else."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import anyio.to_thread
from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, JSONBody

from registry.bodies import read_body
from registry.core.digest import Digest
from registry.core.roles import Role
from registry.deps import SettingsDep
from registry.domain.auth.guards import principal_of, readers, requires
from registry.domain.jobs.deps import JobServiceDep
from registry.domain.jobs.schemas import Claim, Failure, Job, VerifyRequest

AnyRequest = Request[Any, Any, Any]
workers = requires(Role.WORKER)
requesters = requires(Role.PUBLISHER, Role.GOVERNOR)


def _token(request: AnyRequest) -> str:
    token_id = principal_of(request).token_id
    assert token_id is not None  # guards admit no anonymous worker
    return token_id


async def _watch_for_hang_up(request: AnyRequest, gone: asyncio.Event) -> None:
    """Set ``gone`` when the client disconnects (its body was read: only that comes)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    gone.set()


class JobController(Controller):
    path = "/v1/jobs"
    guards = [workers]

    @post("/claim")
    async def claim(
        self, request: AnyRequest, data: JSONBody[Claim], job_service: JobServiceDep
    ) -> Response[Job | None]:
        if not data.wait_seconds:
            job = await anyio.to_thread.run_sync(
                job_service.claim, data.profiles, _token(request), data.worker
            )
            return Response(job, status_code=200 if job is not None else 204)
        gone = asyncio.Event()
        watcher = asyncio.create_task(_watch_for_hang_up(request, gone))
        try:
            job = await job_service.claim_waiting(
                data.profiles, _token(request), data.worker, data.wait_seconds, gone
            )
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        return Response(job, status_code=200 if job is not None else 204)

    @post("/{job_id:str}/heartbeat", status_code=200)
    async def heartbeat(
        self, request: AnyRequest, job_id: FromPath[str], job_service: JobServiceDep
    ) -> Job:
        return await anyio.to_thread.run_sync(job_service.heartbeat, job_id, _token(request))

    @post("/{job_id:str}/complete", status_code=200, request_max_body_size=None)
    async def complete(
        self,
        request: AnyRequest,
        job_id: FromPath[str],
        job_service: JobServiceDep,
        settings: SettingsDep,
    ) -> Job:
        raw = await read_body(request, settings.limits.max_json_body_bytes, "envelope")
        return await anyio.to_thread.run_sync(job_service.complete, job_id, _token(request), raw)

    @post("/{job_id:str}/fail", status_code=200)
    async def fail(
        self,
        request: AnyRequest,
        job_id: FromPath[str],
        data: JSONBody[Failure],
        job_service: JobServiceDep,
    ) -> Job:
        return await anyio.to_thread.run_sync(
            job_service.fail,
            job_id,
            _token(request),
            data.error,
            data.retry,
            data.nondeterministic,
        )


class VerifyController(Controller):
    path = "/v1/artifacts/{digest:str}"

    @post("/verify", guards=[requesters], status_code=201)
    async def request_verification(
        self, digest: FromPath[str], data: JSONBody[VerifyRequest], job_service: JobServiceDep
    ) -> list[Job]:
        return await anyio.to_thread.run_sync(
            job_service.request,
            Digest.parse(digest),
            data.profile,
            data.count,
            data.task,
            data.channel,
        )

    @get("/jobs", guards=[readers])
    async def jobs(self, digest: FromPath[str], job_service: JobServiceDep) -> list[Job]:
        return await anyio.to_thread.run_sync(job_service.of_artifact, Digest.parse(digest))
