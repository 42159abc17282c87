"""Benchmarks and the evaluation report: `python -m benchmarks.run_all` (make bench)."""
