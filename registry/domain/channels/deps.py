"""Dependency markers for channel handlers."""

from litestar.di import NamedDependency

from registry.domain.channels.services import ChannelService

ChannelServiceDep = NamedDependency[ChannelService]
