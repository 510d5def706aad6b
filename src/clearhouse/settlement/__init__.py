"""Settlement: DvP batches on the CSD and central-bank accounts, optimisation when resources are
short, partial settlement, and payment queues with liquidity saving. May import clearhouse.core
only; the state machine hands it arrays and applies what it returns."""
