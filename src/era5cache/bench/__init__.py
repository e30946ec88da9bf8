"""Benchmarks: programs that compare paths in one run and report ratios (DESIGN.md section 9)."""
