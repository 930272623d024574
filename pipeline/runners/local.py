"""Runs the pipeline in this process with LocalDagRunner and SQLite ML Metadata."""
from pipeline.config import PipelineConfig


def run(config: PipelineConfig) -> None:
  """Runs `create_pipeline(config)` to completion; a failing component's error propagates."""
  from tfx import v1 as tfx

  from pipeline.pipeline import create_pipeline

  config.pipeline_root.mkdir(parents=True, exist_ok=True)
  tfx.orchestration.LocalDagRunner().run(create_pipeline(config))
