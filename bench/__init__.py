"""Benchmarks of Atoll against named peers (dynalite, moto) and a fixed-response ceiling.

Run `python -m bench`; see bench/README.md.
"""
