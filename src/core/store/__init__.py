"""Document stores: the protocol and its names, the embedded store and its snapshots, pgvector, recovery."""
