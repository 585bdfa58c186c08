"""The event traffic report: per airport and UTC hour, departures and arrivals, peak rates, the
share of flights in contact with ATC, positions staffed and the busiest sectors -- the figures an
event team publishes afterwards. Public, like the movements and sessions it counts.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from vatsim_collector.airports.reference import Airport, AirportReference
from vatsim_collector.api.context import Context
from vatsim_collector.api.csv_response import csv_response, wants_csv
from vatsim_collector.api.models_airspace import From, To, unprocessable, window
from vatsim_collector.api.models_reports import AirportReportOut, TrafficReportOut
from vatsim_collector.api.problems import problem_responses
from vatsim_collector.api.reports import airport_report, all_prefixes
from vatsim_collector.store.queries_activity import ActivityFilter, stretches
from vatsim_collector.store.queries_reports import contact_counts, quarter_counts, sector_counts

router = APIRouter(tags=["reports"])

REPORT_MAX = timedelta(days=7)
MAX_AIRPORTS = 20
CSV_COLUMNS = (
    "airport",
    "hour",
    "departures",
    "arrivals",
    "total",
    "airport_departures",
    "airport_arrivals",
    "airport_total",
    "peak_hour",
    "peak_hour_total",
    "peak_15_minutes_start",
    "peak_15_minutes_per_hour",
    "flights",
    "flights_in_contact",
    "atc_contact_share",
    "position_hours",
    "positions",
    "busiest_sectors",
)

Airports = Annotated[
    str,
    Query(
        min_length=2,
        max_length=400,
        pattern=r"^[A-Za-z0-9]{2,8}(,[A-Za-z0-9]{2,8})*$",
        description="1-20 ICAO codes, comma-separated (`EGLL,EHAM`); case-insensitive,"
        " repeats ignored.",
    ),
]


def _airports(codes: str) -> list[Airport]:
    wanted = list(dict.fromkeys(code.upper() for code in codes.split(",")))
    if len(wanted) > MAX_AIRPORTS:
        raise unprocessable(f"at most {MAX_AIRPORTS} airports per report, got {len(wanted)}")
    reference = AirportReference.packaged()
    found = {code: reference.get(code) for code in wanted}
    unknown = [code for code, airport in found.items() if airport is None]
    if unknown:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"unknown airport: {', '.join(unknown)}"
        )
    return [airport for airport in found.values() if airport is not None]


def _csv_cells(report: AirportReportOut) -> dict[str, object]:
    """The per-airport figures, repeated on each of its hour lines."""
    peak, quarter, contact = report.peak_hour, report.peak_15_minutes, report.atc_contact
    return {
        "airport": report.icao,
        "airport_departures": report.departures,
        "airport_arrivals": report.arrivals,
        "airport_total": report.total,
        "peak_hour": "" if peak is None else peak.hour.isoformat().replace("+00:00", "Z"),
        "peak_hour_total": "" if peak is None else peak.total,
        "peak_15_minutes_start": ""
        if quarter is None
        else quarter.start.isoformat().replace("+00:00", "Z"),
        "peak_15_minutes_per_hour": "" if quarter is None else quarter.per_hour,
        "flights": contact.flights,
        "flights_in_contact": contact.in_contact,
        "atc_contact_share": "" if contact.share is None else contact.share,
        "position_hours": report.position_hours,
        "positions": ";".join(f"{p.callsign}={p.hours}" for p in report.positions),
        "busiest_sectors": ";".join(
            f"{s.sector}={s.pilot_sessions}" for s in report.busiest_sectors
        ),
    }


def _csv(report: TrafficReportOut) -> Response:
    lines: list[list[object]] = []
    for airport in report.airports:
        cells = _csv_cells(airport)
        for row in airport.hours:
            line = {
                **cells,
                "hour": row.hour.isoformat().replace("+00:00", "Z"),
                "departures": row.departures,
                "arrivals": row.arrivals,
                "total": row.total,
            }
            lines.append([line[c] for c in CSV_COLUMNS])
    return csv_response(CSV_COLUMNS, lines, "traffic-report.csv")


@router.get(
    "/api/reports/traffic",
    response_model=TrafficReportOut,
    summary="Event traffic report: movements per airport and UTC hour, peaks, ATC, positions",
    description="For each airport (1-20 ICAO codes): departures (takeoffs) and arrivals"
    " (landings) per UTC hour of the window, totals, the peak clock hour and the peak"
    " quarter-hour rate, the share of those flights in contact with ATC, the airport's positions"
    " staffed with their hours, and the 5 sectors most of its flights' sessions flew through."
    " The window defaults to the last 24 hours and may span 7 days. `format=csv` (or"
    " `Accept: text/csv`) gives one line per airport and hour, the airport's figures repeated"
    " on each. An unknown code is a 404 naming it.",
    responses={
        **problem_responses(
            status.HTTP_404_NOT_FOUND,
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            status.HTTP_503_SERVICE_UNAVAILABLE,
        ),
        status.HTTP_200_OK: {"content": {"text/csv": {"schema": {"type": "string"}}}},
    },
)
def traffic_report(
    ctx: Context,
    request: Request,
    airports: Airports,
    start: From = None,
    end: To = None,
    fmt: Annotated[Literal["json", "csv"] | None, Query(alias="format")] = None,
) -> TrafficReportOut | Response:
    start, end = window(ctx.clock(), start, end, maximum=REPORT_MAX)
    chosen = _airports(airports)
    codes = [a.icao for a in chosen]
    with ctx.db.read("api.reports_traffic") as conn:
        quarters = quarter_counts(conn, codes, start, end)
        contacts = contact_counts(conn, codes, start, end)
        sectors = sector_counts(conn, codes, start, end)
        staffed = stretches(conn, ActivityFilter(start, end, prefixes=all_prefixes(chosen)))
    report = TrafficReportOut(
        start=start,
        end=end,
        airports=[
            airport_report(
                airport,
                start,
                end,
                [q for q in quarters if q.airport == airport.icao],
                contacts.get(airport.icao),
                [(sector, n) for icao, sector, n in sectors if icao == airport.icao],
                staffed,
            )
            for airport in chosen
        ],
    )
    if wants_csv(request, fmt):
        return _csv(report)
    return report
