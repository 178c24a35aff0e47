"""Delivery: the outbox drained through transports, signed tokens, subscribers in bulk."""
