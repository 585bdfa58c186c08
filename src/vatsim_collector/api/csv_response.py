"""CSV answers for spreadsheets: whether the client asked for one, and the response itself."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from fastapi import Request, Response

__all__ = ["csv_response", "wants_csv"]


def wants_csv(request: Request, fmt: str | None) -> bool:
    """``format=csv``, or, without a ``format``, an ``Accept`` naming ``text/csv``."""
    if fmt is not None:
        return fmt == "csv"
    return "text/csv" in request.headers.get("accept", "")


def csv_response(
    header: Sequence[str], rows: Iterable[Sequence[object]], filename: str
) -> Response:
    """RFC 4180 lines (CRLF), the header first, offered as a download named ``filename``."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
