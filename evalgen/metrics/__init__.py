"""Metrics, in layers: pure tensor math first, evaluation entry points on top."""
