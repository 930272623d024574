"""`recsys beam local-cluster`: Beam's local job service and an external SDK worker pool until Ctrl-C."""
import argparse
import signal
import threading


def _local_cluster(args: argparse.Namespace) -> int:
  from pipeline.runners import beam, beam_cluster

  # SIGTERM (kill, a supervisor) stops the services like Ctrl-C does: the `with` block below exits. SIGINT too
  # when started in the background of a script, where the shell has it ignored.
  for stop_signal in (signal.SIGINT, signal.SIGTERM):
    signal.signal(stop_signal, signal.default_int_handler)
  with beam_cluster.local_cluster(args.job_port, args.worker_pool_port, args.timeout) as cluster:
    print(f"job service at {cluster.job_endpoint} (pid {cluster.job_service_pid}), "
          f"worker pool at {cluster.worker_pool} (pid {cluster.worker_pool_pid})")
    print(f"recsys pipeline run --beam-mode portable --job-endpoint {cluster.job_endpoint} "
          f"--worker-pool {cluster.worker_pool} ...")
    print("Beam pipeline args: " + " ".join(beam.beam_args(cluster.beam_config())))
    print("Ctrl-C stops both.", flush=True)
    try:
      threading.Event().wait()
    except KeyboardInterrupt:
      print("stopping the job service and the worker pool")
  return 0


def register(subparsers: argparse._SubParsersAction) -> None:
  """Adds the `beam` command group: `local-cluster`."""
  parser = subparsers.add_parser("beam", help="Beam services for cluster-shaped runs on this machine.")
  commands = parser.add_subparsers(dest="beam_command", required=True, metavar="COMMAND")
  cluster = commands.add_parser(
      "local-cluster", help="Run Beam's local job service and an external SDK worker pool until Ctrl-C.",
      description="Starts Beam's local job service and an external SDK worker pool from this environment, "
                  "waits until both answer, prints the arguments of `recsys pipeline run` that submit to "
                  "them, and stops both on Ctrl-C or SIGTERM.")
  cluster.add_argument("--job-port", type=int, help="Job service port (default: a free one).")
  cluster.add_argument("--worker-pool-port", type=int, help="Worker pool port (default: a free one).")
  cluster.add_argument("--timeout", type=float, default=60.0,
                       help="Seconds both services may take to answer (default %(default)s).")
  cluster.set_defaults(handler=_local_cluster)
