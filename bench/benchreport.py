"""Targets of the ingest benchmark and the readable table it prints."""

from __future__ import annotations

from typing import Any

RATIO_TARGET = {"sqlite": 10.0, "postgresql": 20.0}
SCALE_TARGET = 3.5
GROWTH_TARGET = 1.2
BYTES_TARGET = 60.0


def targets(backend: str, result: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(what, measured, limit) for every target the issue sets."""
    rows: list[tuple[str, float, float]] = []
    costs, day = result.get("costs"), result.get("day")
    if costs:
        for name in ("1x", "3x"):
            if name in costs:
                what = f"steady ingest / orjson.loads, {name}"
                rows.append((what, costs[name]["steady_ratio"], RATIO_TARGET[backend]))
        if "steady_3x_over_1x" in costs:
            rows.append(("steady ingest 3x / 1x", costs["steady_3x_over_1x"], SCALE_TARGET))
    if day:
        label = f"ingest after {day['hours_reached']} h / snapshots 20-80"
        rows.append((label, day["late_over_early"], GROWTH_TARGET))
        label = f"same docs: {day['hours_reached']} h db / 80-snapshot copy"
        rows.append((label, day["full_over_early_state"], GROWTH_TARGET))
        positions = day["storage"]["positions"]
        rows.append(("bytes per position", positions["bytes_per_row"], BYTES_TARGET))
    return rows


def _costs(costs: dict[str, Any]) -> None:
    print("Per snapshot (steady state = same sessions +15 s, every pilot moved; medians)")
    print(
        f"{'':4} {'pilots':>6} {'KiB':>6} {'ingest ms':>10} {'orjson ms':>10} {'ratio':>6}"
        f" | {'empty-db ingest ms':>18} {'ratio':>6}"
    )
    for name in ("1x", "3x"):
        c = costs.get(name)
        if c:
            print(
                f"{name:4} {c['pilots']:6d} {c['document_bytes'] / 1024:6.0f}"
                f" {c['steady_ingest_ms']:10.1f} {c['steady_orjson_ms']:10.2f}"
                f" {c['steady_ratio']:6.1f} | {c['first_ingest_ms']:18.1f} {c['first_ratio']:6.1f}"
            )
    for kind in ("steady", "steady_3x_over_1x_paired_median", "steady_ingest_cpu", "first"):
        key = kind if kind.startswith("steady_3x") else f"{kind}_3x_over_1x"
        if key in costs:
            print(f"  3x/1x ingest, {kind.replace('_3x_over_1x', '')}: {costs[key]:.2f}")


def _day(day: dict[str, Any]) -> None:
    print(
        f"Day: {day['day_snapshots_reached']} snapshots ({day['hours_reached']} h) in"
        f" {day['wall_s']:.0f} s; mean ingest {day['mean_ingest_ms']:.1f} ms"
    )
    for label in ("early", "late"):
        w = day[label]
        print(
            f"  {label:5} snapshots {w['snapshots'][0]}-{w['snapshots'][1]}:"
            f" ingest {w['ingest_ms']:.1f} ms (client CPU {w['ingest_cpu_ms']:.1f}),"
            f" orjson {w['orjson_ms']:.2f} ms, {w['pilots']:.0f} pilots,"
            f" {w['transceivers']:.0f} transceivers"
        )
    print(
        f"  late/early: wall {day['late_over_early']:.3f}, per pilot"
        f" {day['late_over_early_per_pilot']:.3f},"
        f" vs orjson {day['late_over_early_vs_orjson']:.3f},"
        f" client CPU {day['late_over_early_cpu']:.3f}"
    )
    c, p = day["early_state_copy"], day["paired_full"]
    print(
        f"  then, alternating, snapshots {p['snapshots'][0]}-{p['snapshots'][1]} into the full"
        f" database: {p['ingest_ms']:.1f} ms (client CPU {p['ingest_cpu_ms']:.1f}), and into the"
        f" copy made after {c['copied_after_snapshots']} snapshots: {c['ingest_ms']:.1f} ms"
        f" (client CPU {c['ingest_cpu_ms']:.1f});"
        f" full/copy: wall {day['full_over_early_state']:.3f},"
        f" client CPU {day['full_over_early_state_cpu']:.3f}"
    )
    hourly = " ".join(f"{v:.0f}" for v in day["hourly_median_ingest_ms"])
    print(f"  hourly median ingest ms: {hourly}")
    for table, s in day["storage"].items():
        print(
            f"  {table:12} {s['rows']:>11,} rows {s['bytes_per_row']:6.1f} B/row"
            f" (table {s['table_bytes_per_row']:.1f} + index {s['index_bytes_per_row']:.1f})"
        )


def print_report(backend: str, result: dict[str, Any]) -> None:
    print(f"\n=== {backend} ===")
    if result.get("costs"):
        _costs(result["costs"])
    if result.get("day"):
        _day(result["day"])
    print("Targets:")
    for what, value, limit in targets(backend, result):
        verdict = "PASS" if value <= limit else "FAIL"
        print(f"  {what:46} {value:8.2f}  <= {limit:<6g} {verdict}")
