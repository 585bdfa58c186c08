"""The VATSIM feed: its documents and how they are fetched.

Owns the typed models of the v3 data and transceivers documents, the one table of column limits
(``limits``), record-level decoding (``decode``, ``records``, ``split``, ``report``), bounded
bodies (``body``), the sanity gate, and the HTTP client with its mirrors, deadline, dedupe and
fixed-rate schedule.

May import: ``config``, ``errors``. Knows nothing of sessions, storage or the API.
"""
