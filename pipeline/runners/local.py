"""Runs the pipeline in this process with LocalDagRunner and SQLite ML Metadata."""
import dataclasses

from pipeline.config import PipelineConfig


def absolute_paths(config: PipelineConfig) -> PipelineConfig:
  """`config` with its paths made absolute: artifact URIs are handed to Beam workers, which on the portable
  runner are other processes with their own working directory."""
  return dataclasses.replace(
      config, pipeline_root=config.pipeline_root.resolve(), examples_dir=config.examples_dir.resolve(),
      serving_dir=config.serving_dir.resolve(),
      metadata_path=config.metadata_path.resolve() if config.metadata_path else None,
      schema_dir=config.schema_dir.resolve() if config.schema_dir else None)


def run(config: PipelineConfig) -> None:
  """Runs `create_pipeline(config)` to completion; a failing component's error propagates."""
  from tfx.orchestration.local.local_dag_runner import LocalDagRunner

  from pipeline.pipeline import create_pipeline

  config = absolute_paths(config)
  config.pipeline_root.mkdir(parents=True, exist_ok=True)
  LocalDagRunner().run(create_pipeline(config))
