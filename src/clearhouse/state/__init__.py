"""The deterministic state machine: reference data, balances, trades, positions and fails, and the
pure function from ordered submissions to new state, receipts and state root. May import
clearhouse.core, clearhouse.ledger (records, merkle, crypto), clearhouse.clearing and
clearhouse.settlement; never an interface, a store or a sequencer."""
