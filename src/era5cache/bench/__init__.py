"""Benchmarks: programs that compare paths in one run and report ratios
(docs/contracts.md section 9)."""
