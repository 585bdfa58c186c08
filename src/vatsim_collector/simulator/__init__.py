"""A fake VATSIM feed for tests, demos and benchmarks, served over real HTTP.

Owns the simulated world seeded from a real snapshot (``world``, ``traffic``, ``flights``,
``geo``), reproducible feed faults (``faults``), the HTTP app (``server``) and running it in a
thread (``thread``). Deterministic per seed.

May import: ``feed.models`` and ``config`` only; its geometry is its own, so that tests can use
it as an independent oracle of the collector's.
"""
