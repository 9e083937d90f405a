"""Benchmarks (`artcap bench ...`): speed of the real pipeline, never timed tests."""
