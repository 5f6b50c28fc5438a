"""Benchmarks of amtune's strategies against Optuna's samplers (scripts, not tests)."""
