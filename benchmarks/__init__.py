"""Benchmarks: each heavy stage beside a single-process baseline measured in the same run."""
