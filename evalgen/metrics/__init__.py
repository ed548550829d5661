"""Metrics, in layers: pure tensor math first, evaluation entry points on top."""

from evalgen.metrics.registry import NEEDS, MetricInputs, MetricSpec

__all__ = ["NEEDS", "MetricInputs", "MetricSpec"]
