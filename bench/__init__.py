"""Byline's benchmarks and evaluations, each run from the repo root: `python -m bench.NAME`."""
