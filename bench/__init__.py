"""Benchmarks: Quayside against the tools users would otherwise use, in the same run.

``python -m bench [NAME ...]`` runs them; see :mod:`bench.harness` and ``docs/benchmarks.md``.
"""
