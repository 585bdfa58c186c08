"""Message brokers that carry the event layer's events beyond one process, one package each."""
