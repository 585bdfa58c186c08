"""Airspace analytics: where aircraft are and who talks to them.

Owns sector sets and their geometry (``sectors``, ``geometry``, the shipped VATSpy FIRs in
``geo/``), the optional boundary filter (``boundary``, ``boundary_filtering``), the ATC contact
matcher (``contacts``), the occupancy and contact state machines (``engine``, run live by
``live``), its wiring from settings (``setup``), and the arithmetic of flight and controller
summaries (``summaries``).

May import: ``feed.models``, ``tracking``, ``errors``, ``config``. Never ``store`` or ``api``.
"""
