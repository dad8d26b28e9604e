"""Wires settings, database, blob store and every domain context into one Litestar app.

This is the only module that imports every context. Nothing here holds state
another replica needs: sessions, uploads and blobs live in the database and store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.to_thread
from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from sqlalchemy import Engine

from registry.accesslog import quiet_routine_requests
from registry.allow import AllowMiddleware
from registry.core.checkpoint import NoteSigner
from registry.core.clock import Clock, utc_now
from registry.core.keys import SigningKey
from registry.core.policy import Policy, parse_policy
from registry.db.engine import make_engine, make_session_factory
from registry.domain.artifacts.controllers import ArtifactController, RevokeController
from registry.domain.artifacts.services import ArtifactService
from registry.domain.attestations.controllers import AttestationController
from registry.domain.attestations.services import AttestationService
from registry.domain.auth.controllers import RegistryTokenController, TokenController
from registry.domain.auth.guards import ANONYMOUS_READS_KEY, TOKEN_SERVICE_KEY
from registry.domain.auth.services import TokenService
from registry.domain.blobs.controllers import BlobController, UploadController
from registry.domain.blobs.reconcile import STAGED_WRITE_IDLE_SECONDS, StoreReconciler
from registry.domain.blobs.services import BlobService
from registry.domain.blobs.uploads import UploadService
from registry.domain.channels.controllers import (
    ChannelController,
    ResolveController,
    StatusController,
)
from registry.domain.channels.evidence import Evidence
from registry.domain.channels.findings import NondeterminismRecorder
from registry.domain.channels.policy import PolicyInForce
from registry.domain.channels.services import ChannelService
from registry.domain.jobs.controllers import JobController, VerifyController
from registry.domain.jobs.services import JobService
from registry.domain.keys.controllers import KeyController
from registry.domain.keys.services import KeyService
from registry.domain.log.controllers import LogController
from registry.domain.log.services import TransparencyLog
from registry.domain.log.witness import (
    FileWitness,
    StoreWitness,
    Witness,
    Witnesses,
    log_id,
)
from registry.domain.oci.controllers import OciController
from registry.domain.oci.images import ImagePublisher
from registry.domain.oci.pins import RuntimeImages
from registry.domain.oci.services import OciService
from registry.domain.system.controllers import SystemController
from registry.domain.system.services import HealthService
from registry.fastpath import FastPath
from registry.http import MetricsMiddleware, StrictJSONRequest, problem_response, refuse_nul
from registry.metrics import Metrics
from registry.ocierrors import PUBLIC_URL_KEY
from registry.openapi import openapi_config
from registry.settings import Settings
from registry.storage import BlobStore, StorageError
from registry.storage.base import StoreClock
from registry.storage.filesystem import FilesystemBlobStore
from registry.storage.s3 import S3BlobStore

log = logging.getLogger("reliquary")


def create_log_key(path: Path) -> bool:
    """Write a new Ed25519 checkpoint key (0600) unless one exists; True if written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(SigningKey.generate().to_pem())
    return True


def load_log_signer(settings: Settings) -> NoteSigner:
    """The checkpoint signer. The embedded default creates its key on first start;
    elsewhere a missing key is an error (every replica must share one key).

    Raises:
        RuntimeError: no key file outside the embedded default.
    """
    path = settings.log.key_file
    if not path.exists():
        if not settings.embedded:
            raise RuntimeError(
                f"the log signing key {path} does not exist: create it once with "
                "`reliquary-server log-key create` and give every API replica the same file "
                "(RELIQUARY_LOG_KEY_FILE)"
            )
        create_log_key(path)
    key = SigningKey.from_pem(path.read_bytes())
    return NoteSigner(settings.log.origin, key.private_raw())


def log_key_seed(settings: Settings) -> bytes:
    """The log signing key's private seed, which scoped ``/v2`` tokens are sealed under
    (through HKDF): every replica shares the key, so each verifies what another issued.
    Call after ``load_log_signer``, which makes sure the key exists."""
    return SigningKey.from_pem(settings.log.key_file.read_bytes()).private_raw()


def log_witness(settings: Settings, store: BlobStore, signer: NoteSigner) -> Witnesses:
    """Where the largest signed tree is kept: a file beside the log key, and the bucket
    too on S3 (``registry/domain/log/witness.py``)."""
    log_name = log_id(signer.verifier_key())
    witnesses: list[Witness] = [FileWitness(settings.log.witness_file, log_name)]
    if isinstance(store, S3BlobStore):
        witnesses.append(StoreWitness(store, log_name))
    return Witnesses(witnesses)


def load_policy(settings: Settings) -> Policy:
    """The promotion policy from RELIQUARY_POLICY_FILE, or one with no requirements.

    Raises:
        InvalidPolicyError, OSError: the configured file is unreadable or invalid.
    """
    path = settings.policy.file
    return parse_policy(b"" if path is None else path.read_bytes())


def open_blob_store(settings: Settings, now: StoreClock | None = None) -> BlobStore:
    """The configured store; ``now`` replaces its own clock for purges (tests only)."""
    s = settings.storage
    if s.backend == "s3":
        return S3BlobStore(
            s.s3_bucket,
            endpoint_url=s.s3_endpoint_url,
            region=s.s3_region,
            prefix=s.s3_prefix,
            access_key_id=s.s3_access_key_id,
            secret_access_key=s.s3_secret_access_key,
            public_endpoint_url=s.s3_public_endpoint_url,
            now=now,
        )
    return FilesystemBlobStore(s.root, now=now)


def blob_redirects(settings: Settings, store: BlobStore) -> Callable[[str], str] | None:
    """Presigned S3 URLs for blob GETs, when ``RELIQUARY_S3_REDIRECT`` asks for them."""
    seconds = settings.storage.s3_redirect_seconds
    if not seconds or not isinstance(store, S3BlobStore):
        return None
    return lambda blake3_hex: store.presigned_get(blake3_hex, seconds)


@dataclass(frozen=True, slots=True)
class Services:
    """Every long-lived object one app instance uses."""

    settings: Settings
    engine: Engine
    store: BlobStore
    metrics: Metrics
    tokens: TokenService
    blobs: BlobService
    uploads: UploadService
    reconciler: StoreReconciler
    artifacts: ArtifactService
    health: HealthService
    log: TransparencyLog
    keys: KeyService
    attestations: AttestationService
    channels: ChannelService
    jobs: JobService
    oci: OciService

    @classmethod
    def build(
        cls, settings: Settings, engine: Engine | None = None, now: Clock | None = None
    ) -> Services:
        """``now``: the clock for job leases, token expiry and the store's purges (tests
        move it; by default the services read the real time and S3 its own)."""
        engine = engine or make_engine(settings.database.url, pool_size=settings.database.pool_size)
        writes = make_session_factory(engine)
        reads = make_session_factory(engine, read_only=True)
        clock = now or utc_now
        store = open_blob_store(settings, None if now is None else lambda: now().timestamp())
        metrics = Metrics()
        blobs = BlobService(store, writes, reads, metrics, presign=blob_redirects(settings, store))
        uploads = UploadService(blobs, writes, reads, settings.limits)
        # a monolithic PUT cannot resume, so one idle this long (at most the upload TTL) is dead
        staged_idle = min(STAGED_WRITE_IDLE_SECONDS, settings.limits.upload_ttl_seconds)
        signer = load_log_signer(settings)
        log = TransparencyLog(writes, reads, signer, log_witness(settings, store, signer))
        artifacts = ArtifactService(blobs, writes, reads, log, images=RuntimeImages(reads))
        keys = KeyService(writes, reads, log)
        findings = NondeterminismRecorder(log, metrics)
        attestations = AttestationService(artifacts, keys, writes, reads, log, hooks=[findings])
        evidence = Evidence(artifacts, attestations, keys)
        policy = load_policy(settings)
        jobs = JobService(
            artifacts,
            attestations,
            writes,
            reads,
            policy,
            metrics,
            lease_seconds=settings.jobs.lease_seconds,
            max_attempts=settings.jobs.max_attempts,
            on_nondeterministic=findings.record,
            now=clock,
        )
        artifacts.add_push_hook(jobs.enqueue_required)
        in_force = PolicyInForce(policy, artifacts, log)
        artifacts.add_push_hook(in_force.on_push)  # a dataset the policy names: logged
        channels = ChannelService(artifacts, evidence, jobs, writes, reads, log, in_force)
        jobs.plan_evaluations_with(channels)
        return cls(
            settings=settings,
            engine=engine,
            store=store,
            metrics=metrics,
            tokens=TokenService(
                writes,
                reads,
                settings.auth.token_cache_seconds,
                now=clock,
                log_key_seed=log_key_seed(settings),
            ),
            blobs=blobs,
            uploads=uploads,
            reconciler=StoreReconciler(blobs, uploads, metrics, staged_idle_seconds=staged_idle),
            artifacts=artifacts,
            health=HealthService(reads, store),
            log=log,
            keys=keys,
            attestations=attestations,
            channels=channels,
            jobs=jobs,
            oci=OciService(blobs, writes, reads, ImagePublisher(blobs, artifacts)),
        )

    def close(self) -> None:
        self.engine.dispose()


def _provide(value: Any) -> Provide:
    return Provide(lambda: value, use_cache=True, sync_to_thread=False)


async def _reconcile_store_forever(services: Services) -> None:
    """Expire uploads and put right what crashed processes left in the blob store
    (``StoreReconciler``): once at start, beside the first requests, then every interval."""
    interval = min(600.0, max(5.0, services.settings.limits.upload_ttl_seconds / 4))
    while True:
        try:
            await anyio.to_thread.run_sync(services.reconciler.run)
        except Exception:
            log.exception("store reconciliation failed; will retry in %.0f s", interval)
        await asyncio.sleep(interval)


def _check_witness(services: Services) -> None:
    """Refuse to start on a database behind the log witness (LogIntegrityError). An
    unreachable witness store only delays the check: no checkpoint is signed until
    the witness can be read (``TransparencyLog.checkpoint`` checks it each time)."""
    try:
        services.log.check_witness()
    except StorageError as exc:
        log.warning("the log witness cannot be read now (%s); checkpoints wait for it", exc)


def create_app(
    settings: Settings, *, services: Services | None = None, close_services: bool = False
) -> Litestar:
    """The registry API for ``settings`` (``services`` lets tests share an engine).

    The app closes the services at shutdown when it built them or ``close_services``.
    """
    svc = services or Services.build(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(_check_witness, svc)  # refuses a rewound database
        await anyio.to_thread.run_sync(svc.channels.record_policy)
        for problem in await anyio.to_thread.run_sync(svc.channels.disagreements):
            log.error("channel state disagrees with the log (refused until fixed): %s", problem)
        task = asyncio.create_task(_reconcile_store_forever(svc))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            if services is None or close_services:
                svc.close()

    return Litestar(
        route_handlers=[
            SystemController,
            BlobController,
            UploadController,
            ArtifactController,
            ResolveController,
            RevokeController,
            TokenController,
            RegistryTokenController,
            KeyController,
            AttestationController,
            LogController,
            ChannelController,
            StatusController,
            JobController,
            VerifyController,
            OciController,
        ],
        dependencies={
            "settings": _provide(settings),
            "metrics": _provide(svc.metrics),
            "token_service": _provide(svc.tokens),
            "blob_service": _provide(svc.blobs),
            "upload_service": _provide(svc.uploads),
            "artifact_service": _provide(svc.artifacts),
            "health_service": _provide(svc.health),
            "transparency_log": _provide(svc.log),
            "key_service": _provide(svc.keys),
            "attestation_service": _provide(svc.attestations),
            "channel_service": _provide(svc.channels),
            "job_service": _provide(svc.jobs),
            "oci_service": _provide(svc.oci),
        },
        state=State(
            {
                TOKEN_SERVICE_KEY: svc.tokens,
                ANONYMOUS_READS_KEY: settings.auth.anonymous_reads,
                PUBLIC_URL_KEY: settings.auth.public_url,
            }
        ),
        exception_handlers={Exception: problem_response},
        request_class=StrictJSONRequest,
        before_request=refuse_nul,
        middleware=[DefineMiddleware(MetricsMiddleware, metrics=svc.metrics), AllowMiddleware],
        lifespan=[lifespan],
        request_max_body_size=settings.limits.max_json_body_bytes,
        openapi_config=openapi_config(),
        debug=False,
    )


def create_asgi(settings: Settings, *, services: Services | None = None) -> FastPath:
    """The app as served: the memory fast path for hot immutable reads, then Litestar."""
    svc = services or Services.build(settings)
    app = create_app(settings, services=svc, close_services=services is None)
    return FastPath(
        app,
        svc.tokens,
        svc.blobs,
        svc.artifacts,
        svc.metrics,
        svc.oci,
        settings.auth.anonymous_reads,
    )


def app_from_env() -> FastPath:
    """Factory for ``uvicorn --factory``: settings from ``RELIQUARY_*`` variables."""
    quiet_routine_requests()  # no access line for a worker's empty claims
    return create_asgi(Settings.from_env())
