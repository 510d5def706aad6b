"""The verifiable ledger: keys and signatures, Merkle trees, blocks, the storage interface and its
backends, and verification. May import clearhouse.core only (verification also drives the state
machine through clearhouse.state)."""
