"""Moved to pipeline/recommender/demo.py; this alias goes once pipeline/cli/pipeline.py imports it from there."""
from pipeline.recommender.demo import run_demo

__all__ = ["run_demo"]
