"""Sessions, flights, plans and prefiles: what a snapshot changes in the live picture.

Owns the live state (``state``), the tracker that turns an accepted snapshot into a changeset
grouped per kind (``tracker``, ``changes``), the immutable view readers get (``live``), and the
geodesy everyone shares (``geodesy``). Pure: no I/O.

May import: ``feed`` (its models).
"""
