"""Evaluation on the standard benchmarks, and recall measurement of approximate indexes."""
