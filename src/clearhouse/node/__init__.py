"""A ledger node: the state machine, a store, and a sequencer that orders submissions into
blocks (embedded in-process here; NATS JetStream in the networked mode). May import
clearhouse.core, clearhouse.ledger and clearhouse.state; never an interface."""
