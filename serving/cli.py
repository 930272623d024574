"""Moved to pipeline/cli/serving.py; this alias goes once pipeline/cli/__init__.py imports it from there."""
from pipeline.cli.serving import register

__all__ = ["register"]
