"""Report, per real shared snapshot, how the airports pilots on the ground are placed at agree
with their filed departure or arrival (issue 13, acceptance; docs/airports.md).

    PYTHONPATH=src .venv/bin/python scripts/airport_agreement.py [--airports-file FILE]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vatsim_collector.airports.agreement import agreement
from vatsim_collector.airports.nearest import AirportIndex
from vatsim_collector.airports.reference import AirportReference
from vatsim_collector.feed.decode import decode_snapshot

FEEDS = Path(__file__).resolve().parents[2] / "shared" / "data" / "feeds"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--airports-file", type=Path, default=None)
    parser.add_argument("--radius-nm", type=float, default=5.0)
    parser.add_argument("--feeds", type=Path, default=FEEDS)
    args = parser.parse_args()
    index = AirportIndex(AirportReference.load(args.airports_file))
    print("snapshot            pilots on_ground checked agreeing share  slow_unplaced")
    for path in sorted(args.feeds.glob("vatsim-data-*.json")):
        snap = decode_snapshot(path.read_bytes())
        rep = agreement(index, snap.pilots, radius_nm=args.radius_nm)
        stamp = path.stem.removeprefix("vatsim-data-")
        print(
            f"{stamp:<19} {rep.pilots:6} {rep.on_ground:9} {rep.checked:7} {rep.agreeing:8}"
            f" {rep.share:6.1%} {len(rep.slow_unplaced):5}"
        )
        for d in rep.disagreements:
            print(
                f"    disagrees: {d.callsign} placed {d.placed} ({d.placed_nm:.1f} nm),"
                f" filed within radius {', '.join(d.filed_within)}"
            )
        for callsign, code, placed in rep.unknown_filed:
            print(f"    filed code not in reference: {callsign} filed {code}, placed {placed}")
        for callsign, code, nm, placed in rep.near_miss:
            print(f"    filed {code} {nm:.1f} nm away: {callsign} placed {placed}")
        for callsign in rep.slow_unplaced:
            print(f"    slow, no airport within radius: {callsign}")


if __name__ == "__main__":
    main()
