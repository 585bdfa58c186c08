"""A fake VATSIM feed for tests, demos and benchmarks, served over real HTTP.

Owns the simulated world seeded from a real snapshot (``world``, ``traffic``, ``flights``,
``geo``), realistic flights between real airports and their ground truth (``aerodromes``,
``realistic``, ``schedule``), reproducible feed faults (``faults``), the HTTP app
(``server``) and running it in a thread (``thread``). Deterministic per seed.

May import: ``feed.models`` and ``config`` only (and the ``airportsdata`` package, read
directly); its geometry and airports are its own, so that tests can use it as an
independent oracle of the collector's.
"""
