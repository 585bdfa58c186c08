"""NATS JetStream: the outbox relay that publishes events and the workers that consume them."""
