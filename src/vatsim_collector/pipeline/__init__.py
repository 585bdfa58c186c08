"""How a fetched document becomes committed history.

Owns the collection loop (``poller``: a fetcher and a writer joined by the ``pending`` queue,
spilling to the disk ``spool``), the ingest of one document (``ingest``: decode, bounds, the
sanity gate, tracking, airspace, one transaction), the domain events of a committed snapshot
(``domain_events``), and the two ways to feed it history: ``replay`` of recorded files and
``recompute`` of airspace analytics from stored rows. On a node that does not ingest, the
``follower`` keeps an ingestor's live view current from the database the leader writes.

May import: ``feed``, ``tracking``, ``airspace``, ``events``, ``errors``, ``store``, ``config``.
Nothing but ``service``, ``cli`` and ``api`` imports it.
"""
