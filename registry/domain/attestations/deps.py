"""Dependency markers for attestation handlers."""

from litestar.di import NamedDependency

from registry.domain.attestations.services import AttestationService

AttestationServiceDep = NamedDependency[AttestationService]
