"""Forgetting a member over HTTP: ``DELETE /api/members/{cid}`` (admin keys only).

Besides the stored history (``store.forget``), the collector this API runs beside is told to
rebuild its open sessions from the database before its next snapshot, so it does not write to
the member's deleted sessions, and the live view drops the member at once. A member still
online appears again from the next snapshot, as new sessions: forgetting is about what was
stored, not about what the feed keeps publishing. With an archive configured, the member's
rows are then removed from the archive's Parquet files too (``store.archive_forget``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from pydantic import BaseModel, Field

from vatsim_collector.api.auth import AdminAccess
from vatsim_collector.api.context import Collector, Context
from vatsim_collector.api.models import ErrorOut
from vatsim_collector.store.archive import ArchiveError
from vatsim_collector.store.archive_forget import forget_in_archive
from vatsim_collector.store.forget import forget_member

router = APIRouter(
    tags=["privacy"],
    dependencies=[AdminAccess],
    responses={
        status.HTTP_401_UNAUTHORIZED: {"model": ErrorOut},
        status.HTTP_403_FORBIDDEN: {"model": ErrorOut},
    },
)

Cid = Annotated[int, Path(ge=1, le=99_999_999, description="The member's VATSIM CID.")]


class ArchiveForgetOut(BaseModel):
    rows_removed: dict[str, int] = Field(description="Rows removed from archive files, per table.")
    files_rewritten: int = Field(description="Archive files rewritten without the member.")


class ForgetOut(BaseModel):
    cid: int
    found: bool = Field(description="Whether anything about the member was stored.")
    deleted: dict[str, int] = Field(description="Rows deleted, per table.")
    updated: dict[str, int] = Field(
        description="Rows rewritten without the member, per table: other members' summaries"
        " recomputed, held documents with the member's records taken out, error records with"
        " the member's cid, callsigns and names replaced by [forgotten]."
    )
    held_documents_unreadable: int = Field(
        description="Held documents deleted because they could not be parsed and may hold the"
        " member (included in deleted.held_documents)."
    )
    open_sessions: int = Field(description="The member's sessions that were still online.")
    live_sessions_dropped: int = Field(description="Sessions removed from the live view.")
    archive: ArchiveForgetOut | None = Field(
        None, description="What was removed from the Parquet archive (null: no archive)."
    )


def _drop_from_live(collector: Collector, cid: int) -> int:
    live = collector.live
    pilots = tuple(s for s in live.pilots if s.cid != cid)
    controllers = tuple(s for s in live.controllers if s.cid != cid)
    atis = tuple(s for s in live.atis if s.cid != cid)
    dropped = (
        len(live.pilots)
        + len(live.controllers)
        + len(live.atis)
        - len(pilots)
        - len(controllers)
        - len(atis)
    )
    if dropped:
        # One assignment, as the ingestor publishes its views: readers see either view whole.
        collector.live = replace(live, pilots=pilots, controllers=controllers, atis=atis)
    return dropped


@router.delete(
    "/api/members/{cid}",
    response_model=ForgetOut,
    summary="Forget a member: delete or anonymise everything stored about the CID",
)
def forget(ctx: Context, cid: Cid) -> ForgetOut:
    report = forget_member(ctx.db, cid)
    if report.found:
        # The collector's memory still holds the deleted rows' ids (open sessions, and recently
        # ended flights a reconnect would continue); writing the next snapshot against them
        # would fail. With this flag (the one its own failed writes set; there is no public
        # setter yet) the ingestor rebuilds its state from the database first.
        ctx.collector.invalidate()
    dropped = _drop_from_live(ctx.collector, cid)
    archived = None
    if ctx.archive is not None:
        try:
            archived = forget_in_archive(
                ctx.archive.directory, cid, compression_level=ctx.archive.compression_level
            ).as_dict()
        except ArchiveError as exc:
            raise HTTPException(
                status.HTTP_500_INTERNAL_SERVER_ERROR,
                detail="the member was removed from the database, but not from every archive"
                f" file ({exc}); forget again to finish",
            ) from exc
    return ForgetOut.model_validate(
        {**report.as_dict(), "live_sessions_dropped": dropped, "archive": archived}
    )
