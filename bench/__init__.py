"""Benchmarks of the gate station; each prints its results as JSON."""
