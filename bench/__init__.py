"""citcon-sim's benchmark suite: ``python -m bench`` (see docs/performance.md).

Kept import-free so ``python -m bench.baseline_server`` starts as fast as a bare
aiohttp app: the start-up comparison depends on it.
"""
