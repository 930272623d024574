"""A cluster-shaped Beam on this machine: Beam's local job service and an external SDK worker pool, each its
own process started from this project's environment.

A job submitted to the job service (`--runner=PortableRunner`) runs its user code in SDK worker processes the
pool starts, which share nothing with the launching process: what a Flink or Spark cluster does. The workers
find `components.*` by module path because the project is installed in this environment.
"""
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, List, Optional

from pipeline.config import BeamConfig

JOB_SERVICE_MODULE = "apache_beam.runners.portability.local_job_service_main"
WORKER_POOL_MODULE = "apache_beam.runners.worker.worker_pool_main"


class ClusterStartError(RuntimeError):
  """A service did not answer in time or exited while starting; the message holds the end of its log."""


@dataclasses.dataclass(frozen=True)
class LocalCluster:
  """The two running services: where they listen and their process ids."""
  job_endpoint: str
  worker_pool: str
  job_service_pid: int
  worker_pool_pid: int

  def beam_config(self) -> BeamConfig:
    """The portable-runner BeamConfig that submits to this cluster."""
    return BeamConfig(mode="portable", job_endpoint=self.job_endpoint, worker_pool=self.worker_pool)


def _start(name: str, command: List[str], log_dir: Path) -> "subprocess.Popen[bytes]":
  """Starts `command` in its own process group (so that stopping it also stops the SDK workers it started)."""
  env = dict(os.environ)
  # The worker pool starts each SDK worker as `python -c ...` found on PATH: it must be this environment's
  # interpreter, the one with Beam and the project installed. TF_USE_LEGACY_KERAS (components/keras3.py, set
  # in this process) is inherited the same way.
  env["PATH"] = os.pathsep.join((str(Path(sys.executable).parent), env.get("PATH", "")))
  with (log_dir / f"{name}.log").open("wb") as log:
    # In the log directory, not the launcher's: workers find the project as installed, not from its checkout,
    # and a path relative to the launcher's directory fails here as it would on a cluster.
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=log_dir,
                            start_new_session=True)


def _log_tail(log_dir: Path, name: str, lines: int = 20) -> str:
  return "\n".join((log_dir / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])


def _wait_until_ready(name: str, endpoint: str, process: "subprocess.Popen[bytes]", log_dir: Path,
                      deadline: float) -> None:
  """Returns once a gRPC channel to `endpoint` is ready; raises ClusterStartError if `process` exits first or
  the deadline passes."""
  import grpc

  channel = grpc.insecure_channel(endpoint)
  try:
    ready = grpc.channel_ready_future(channel)
    while True:
      try:
        ready.result(timeout=0.5)
        return
      except grpc.FutureTimeoutError:
        if process.poll() is not None:
          raise ClusterStartError(f"{name} exited with status {process.returncode} before answering at "
                                  f"{endpoint}:\n{_log_tail(log_dir, name)}") from None
        if time.monotonic() > deadline:
          raise ClusterStartError(f"{name} did not answer at {endpoint} in time:\n{_log_tail(log_dir, name)}")
  finally:
    channel.close()


def _stop(process: "subprocess.Popen[bytes]", timeout_s: float = 10.0) -> None:
  """SIGTERM to the process group of `process` (its pid), SIGKILL if it outlives `timeout_s`."""
  if process.poll() is None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
      process.wait(timeout_s)
    except subprocess.TimeoutExpired:
      os.killpg(process.pid, signal.SIGKILL)
      process.wait()
  # SDK workers the pool started may outlive it in its group; the group id is the pool's pid.
  with contextlib.suppress(ProcessLookupError):
    os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def local_cluster(job_port: Optional[int] = None, worker_pool_port: Optional[int] = None,
                  timeout_s: float = 60.0, log_dir: Optional[Path] = None) -> Iterator[LocalCluster]:
  """Starts the job service and the worker pool, waits until both answer, yields them, then stops both.

  Args:
    job_port / worker_pool_port: ports to listen on (localhost); None picks free ones.
    timeout_s: how long both may take to answer.
    log_dir: where `job_service.log` and `worker_pool.log` are written (None: a temporary directory that is
      removed on exit).

  Raises ClusterStartError when a port is in use, or a service exits or does not answer within `timeout_s`.
  """
  import portpicker

  job_port = job_port or portpicker.pick_unused_port()
  worker_pool_port = worker_pool_port or portpicker.pick_unused_port()
  for port in (job_port, worker_pool_port):
    # Beam's gRPC servers bind with SO_REUSEPORT: on a port in use they would start, answer, and share the
    # jobs with whatever listens there already.
    if not portpicker.is_port_free(port):
      raise ClusterStartError(f"port {port} is already in use (another local cluster?)")
  with contextlib.ExitStack() as stack:
    logs = log_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="beam-local-cluster-")))
    logs.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    services = {}
    for name, command, port in (
        ("job_service", [sys.executable, "-m", JOB_SERVICE_MODULE, "--port", str(job_port)], job_port),
        ("worker_pool", [sys.executable, "-m", WORKER_POOL_MODULE, "--service_port", str(worker_pool_port)],
         worker_pool_port)):
      process = _start(name, command, logs)
      stack.callback(_stop, process)
      services[name] = (process, f"localhost:{port}")
    for name, (process, endpoint) in services.items():
      _wait_until_ready(name, endpoint, process, logs, deadline)
    yield LocalCluster(job_endpoint=services["job_service"][1], worker_pool=services["worker_pool"][1],
                       job_service_pid=services["job_service"][0].pid,
                       worker_pool_pid=services["worker_pool"][0].pid)
