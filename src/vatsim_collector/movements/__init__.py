"""Movements: takeoffs, landings, touch-and-goes, go-arounds, off- and on-block, per pilot session.

Owns the rules (``rules.py``, from settings), the per-snapshot classification of every pilot at
once against the airport index (``classify.py``), the per-session state machine that turns
those samples into movements (``detector.py``) and its persisted state (``state.py``). Pure:
no database, no events; ``pipeline`` feeds it and ``store`` writes what it finds.

May import: ``config``, ``errors``, ``airports``. ``pipeline``, ``store`` and ``api`` may import
it; it never imports them.
"""
