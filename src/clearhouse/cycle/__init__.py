"""Running the clearing and settlement cycle: scenarios in, signed submissions, business days of
blocks, reports out. The client side of the ledger: may import clearhouse.core, ledger, clearing,
state and node; never an interface."""
