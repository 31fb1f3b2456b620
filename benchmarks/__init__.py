"""Benchmarks of zimage-async against hand-written aiohttp loops: ``python -m benchmarks``.

Each workload runs the emulator in a separate process on 127.0.0.1 and measures the SDK
and a raw aiohttp loop doing the same work, interleaved (A B A B) in the same run, each
measurement in a fresh client process. See ``docs/benchmarks.md`` for the method and the
results; ``python -m benchmarks --help`` for the options.
"""
