"""Benchmarks: each prints a table, writes JSON under bench/results/, and has a --quick mode for the suite.

    python -m bench                 run all of them and rewrite BENCHMARKS.md   (make bench)
    python -m bench.<name> [--quick]  run one
"""
