"""Benchmark tooling: a SigV4-signing load generator for KMS-compatible endpoints."""
