"""Channel pointers and their event history."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from registry.db.models import ChannelEventRow, ChannelRow


class ChannelRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, name: str, channel: str) -> ChannelRow | None:
        return self.session.get(ChannelRow, (name, channel))

    def event(self, log_index: int) -> ChannelEventRow | None:
        return self.session.get(ChannelEventRow, log_index)

    def every(self) -> list[ChannelRow]:
        return list(self.session.scalars(select(ChannelRow)))

    def of_name(self, name: str) -> list[ChannelRow]:
        return list(
            self.session.scalars(
                select(ChannelRow).where(ChannelRow.name == name).order_by(ChannelRow.channel)
            )
        )

    def history(
        self, name: str, channel: str | None, before: int | None, limit: int
    ) -> list[ChannelEventRow]:
        query = select(ChannelEventRow).where(ChannelEventRow.name == name)
        if channel is not None:  # findings about the name block every channel: always shown
            query = query.where(
                or_(
                    ChannelEventRow.channel == channel, ChannelEventRow.action == "nondeterministic"
                )
            )
        if before is not None:
            query = query.where(ChannelEventRow.log_index < before)
        return list(
            self.session.scalars(query.order_by(ChannelEventRow.log_index.desc()).limit(limit))
        )
