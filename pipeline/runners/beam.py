"""The Beam pipeline arguments of a BeamConfig: DirectRunner in this machine, or the portable runner of a job
server (Flink, Spark, Beam's local job service). The one place that turns a Beam choice into arguments."""
import dataclasses
import os
from typing import Optional, Tuple

from pipeline.config import BeamConfig

DIRECT_MODES = ("in_memory", "multi_threading", "multi_processing")
# "auto" runs in_memory below this many ratings and multi_processing with one worker per CPU from it on: on 2
# cores in_memory won at 100k ratings (230 vs 247 s) and multi_processing(2) at 1M (479 vs 788 s, BENCHMARKS.md).
MULTI_PROCESSING_FROM_RATINGS = 500_000


def resolve_auto(config: BeamConfig, ratings: Optional[int]) -> BeamConfig:
  """`config` with mode "auto" replaced by the DirectRunner mode for `ratings` (None: unknown, in_memory)."""
  if config.mode != "auto":
    return config
  if ratings is not None and ratings >= MULTI_PROCESSING_FROM_RATINGS:
    return dataclasses.replace(config, mode="multi_processing", workers=max(2, os.cpu_count() or 1))
  return dataclasses.replace(config, mode="in_memory")


def beam_args(config: BeamConfig, ratings: Optional[int] = None) -> Tuple[str, ...]:
  """The `beam_pipeline_args` of every Beam-based component for `config`; mode "auto" is chosen by `ratings`,
  the size of the input (resolve_auto). Empty for in_memory with one worker and no extra arguments: Beam's default.

  Raises ValueError when the fields do not fit the mode: portable without a job endpoint, a job endpoint or
  worker pool with a DirectRunner mode, or a worker count with portable (the job server decides parallelism).
  """
  config = resolve_auto(config, ratings)
  if config.mode in DIRECT_MODES:
    if config.job_endpoint or config.worker_pool:
      raise ValueError(f"beam mode {config.mode!r} runs here; a job endpoint ({config.job_endpoint}) or worker "
                       f"pool ({config.worker_pool}) needs beam mode 'portable'")
    if (config.mode, config.workers, config.extra_args) == ("in_memory", 1, ()):
      # Beam's default. No arguments at all also keeps TFX from packaging itself as an sdist for remote workers
      # in every Beam component, which it does whenever the arguments are not empty: 1 s each, 3 s a run.
      return ()
    return (f"--direct_running_mode={config.mode}", f"--direct_num_workers={config.workers}", *config.extra_args)
  if config.mode != "portable":
    raise ValueError(f"beam mode {config.mode!r}: expected one of {DIRECT_MODES + ('portable',)}")
  if not config.job_endpoint:
    raise ValueError("beam mode 'portable' needs a job endpoint (HOST:PORT of a Flink, Spark or Beam job server)")
  if config.workers != 1:
    raise ValueError(f"beam mode 'portable' takes its parallelism from the job server, not workers="
                     f"{config.workers}; pass the runner's option (e.g. --parallelism for Flink) as an extra arg")
  args = ["--runner=PortableRunner", f"--job_endpoint={config.job_endpoint}",
          f"--job_server_timeout={config.job_timeout_s}"]
  if config.worker_pool:
    # Workers already running beside the job server with this project installed: they import components.*
    # by module path, so nothing is staged.
    args += ["--environment_type=EXTERNAL", f"--environment_config={config.worker_pool}"]
  return (*args, *config.extra_args)
