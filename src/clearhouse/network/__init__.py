"""The networked mode: NATS JetStream and PostgreSQL servers started on loopback, ordering and
replication of the ledger through them, checkpoints and proofs."""
