"""The Beam pipeline arguments of a BeamConfig: DirectRunner in this machine, or the portable runner of a job
server (Flink, Spark, Beam's local job service). The one place that turns a Beam choice into arguments."""
from typing import Tuple

from pipeline.config import BeamConfig

DIRECT_MODES = ("in_memory", "multi_threading", "multi_processing")


def beam_args(config: BeamConfig) -> Tuple[str, ...]:
  """The `beam_pipeline_args` of every Beam-based component for `config`.

  Raises ValueError when the fields do not fit the mode: portable without a job endpoint, a job endpoint or
  worker pool with a DirectRunner mode, or a worker count with portable (the job server decides parallelism).
  """
  if config.mode in DIRECT_MODES:
    if config.job_endpoint or config.worker_pool:
      raise ValueError(f"beam mode {config.mode!r} runs here; a job endpoint ({config.job_endpoint}) or worker "
                       f"pool ({config.worker_pool}) needs beam mode 'portable'")
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
