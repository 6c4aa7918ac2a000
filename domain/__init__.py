"""Pure KMS domain: aggregates, values, crypto and errors (no I/O, no clock)."""
