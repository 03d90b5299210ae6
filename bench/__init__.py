"""Benchmarks: the connector against the floor, side by side. Run ``python -m bench``."""
