"""clearhouse: post-trade clearing and settlement on a verifiable shared ledger."""
