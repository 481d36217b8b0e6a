"""The tiers a TieredCache layers: process memory (L1), Redis (L2) and a database table (L3)."""

#: A shared tier's ``incr`` found a value it cannot add to atomically (a signed
#: payload, or a sum outside 64 bits); the backend then reads, adds and writes.
NOT_INTEGER = object()
