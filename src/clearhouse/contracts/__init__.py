"""Derivatives as contracts on the ledger: CDM swap terms, QuantLib schedules, lifecycle events."""
