"""Serving latency and throughput, measured side by side in one run; prints one JSON object.

On one NCF SavedModel it measures: the in-process SavedModel call (the floor: as the server runs it, and as
the TF2 signature; for `recommend` also with 32 users in one call, what batching can gain inside the model),
Predict 1 user x 1 movie at concurrency 1, `recommend` top-K over the whole catalog at concurrency 1, and
throughput with 32 concurrent callers with batching on (serving/config/batching_parameters.txt) and off. Each
server runs in its own process (`recsys serve --server embedded`), and so does each phase's load (`recsys
loadtest`, the TF-free client: `load_phase`). The throughput phases alternate between the servers in short rounds
and report medians, so that other work on a shared machine weighs on both sides alike. Beside them,
bench/grpc_floor_server.py answers every Predict with one fixed response (no model, no server work): the Python
gRPC floor under the same client, at concurrency 1 and 32, which bounds what the server's overhead and batching
gain can reach on the machine; a second floor server answers the same way through the server's batch queue
(--batch_thread), the floor of a batched request.

Usage:
  .venv/bin/python bench/serving_bench.py                      # ml-100k-shaped model (943 users, 1682 movies)
  .venv/bin/python bench/serving_bench.py --model_dir out/serving/ncf/<version>   # e.g. the model `make run` pushed
  .venv/bin/python bench/serving_bench.py --compare_server_flags="--tensorflow_inter_op_parallelism=-1"
"""
import components.keras3  # noqa: F401  (first: Keras 3 before TensorFlow)
import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import grpc
import numpy as np
import tensorflow as tf

from components import signatures
from pipeline.recommender.client import DEFAULT_MODEL
from pipeline.recommender.loadtest import request_factory
from serving import client as client_lib
from serving import config_files
from serving.client_protos.tensorflow_serving.apis import prediction_service_pb2_grpc

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `tests.support` builds the bench model; run as a script from anywhere
BATCHING_FILE = config_files.BATCHING_PARAMETERS_FILE
ML100K_USERS, ML100K_MOVIES, ML100K_RATINGS_PER_USER = 943, 1682, 106  # ml-100k: 100,000 ratings
IN_PROCESS_BATCH = 32  # the callers of the throughput phases
GRPC_FLOOR = "grpc_floor"  # bench/grpc_floor_server.py: Predict answered with a fixed response
GRPC_FLOOR_BATCHED = "grpc_floor_batch_thread"  # the same, each answer through the batch queue (--batch_thread)
C1_SERVERS = {"": "batching_on", "flags_": "batching_on_flags"}  # key prefix -> server measured at concurrency 1


def build_ml100k_shaped_model(export_dir: Path) -> None:
  """Trains the project's NeuMF (default ModelConfig) for one epoch on made-up ratings with ml-100k's shape
  and exports it exactly like the pipeline; latency depends on the shapes, not on what was learned."""
  from components import model_export  # pylint: disable=import-outside-toplevel
  from tests.support import testdata  # pylint: disable=import-outside-toplevel
  from components import trainer  # pylint: disable=import-outside-toplevel
  from components.hparams import ModelConfig, TrainConfig  # pylint: disable=import-outside-toplevel
  import tensorflow_transform as tft  # pylint: disable=import-outside-toplevel

  shape = testdata.TinyData(users=ML100K_USERS, movies=ML100K_MOVIES, ratings_per_user=ML100K_RATINGS_PER_USER,
                            eval_ratings_per_user=1, eval_negatives=0)
  with tempfile.TemporaryDirectory() as work:
    work_dir = Path(work)
    testdata.write_examples(testdata.make_examples(shape), work_dir / "raw")
    transform_dir, transformed_train = testdata.run_transform(work_dir / "raw", work_dir / "transform")
    tf_transform_output = tft.TFTransformOutput(str(transform_dir))
    train_config = TrainConfig(epochs=1)
    model, _ = trainer.train_model([transformed_train], tf_transform_output, testdata.tfrecord_dataset_factory,
                                   ModelConfig(), train_config)
    model_export.export_serving_model(model, tf_transform_output, export_dir, train_config, "ncf")


def percentiles_ms(seconds: List[float]) -> Dict[str, float]:
  values = np.array(seconds) * 1e3
  return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99)),
          "mean": float(values.mean())}


def in_process_floor(model_dir: Path, users: List[str], movies: List[str], calls: int) -> Dict[str, Dict]:
  """Times the SavedModel's signatures in this process (no server, no serialization), two ways: "eager", the
  TF2 signatures of tf.saved_model.load as a Python user calls them, and "session", the way the server runs them
  (serving.servable.Servable: a Session restored as TF Serving restores it, one callable per signature)."""
  from serving.servable import Servable  # pylint: disable=import-outside-toplevel

  eager = tf.saved_model.load(str(model_dir)).signatures
  servable = Servable("ncf", 1, model_dir)
  runners = {
      "eager": lambda name, inputs: {key: value.numpy() for key, value in eager[name](
          **{key: tf.constant(value) for key, value in inputs.items()}).items()},
      "session": lambda name, inputs: servable.run(servable.signature(name), inputs),
  }
  batch = IN_PROCESS_BATCH

  def ids(values: List[str], start: int, count: int) -> np.ndarray:
    return np.array([values[(start + j) % len(values)].encode() for j in range(count)], dtype=object)

  results: Dict[str, Dict] = {way: {} for way in runners}
  for name, make_inputs in (
      ("predict_1x1", lambda i: {"user_id": ids(users, i, 1), "movie_id": ids(movies, i, 1)}),
      ("recommend", lambda i: {"user_id": ids(users, i, 1)}),
      # What batching can gain inside the model: `recommend` for 32 users in one call (per call, not per user).
      (f"recommend_batch_{batch}", lambda i: {"user_id": ids(users, i * batch, batch)})):
    for way, run in runners.items():
      signature = name.split("_")[0]
      for i in range(50):  # warm up
        run(signature, make_inputs(i))
      times = []
      for i in range(calls):
        inputs = make_inputs(i)
        started = time.perf_counter()
        run(signature, inputs)
        times.append(time.perf_counter() - started)
      results[way][name] = percentiles_ms(times)
  servable.close()
  return results


def server_python_per_predict(model_dir: Path, calls: int) -> Dict[str, float]:
  """CPU microseconds (best of 3 x `calls`) of the server's own Python work for one Predict 1 user x 1 movie,
  without gRPC and without running the model: checks and decoding (begin_predict), the response
  (finish_predict) and the request metrics; "loop_path": all of it as the event loop does it for a request,
  from its wire bytes (parsed) to the response's (serialized), with the servable lookup."""
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=import-outside-toplevel
  from tensorflow_serving.config import model_server_config_pb2  # pylint: disable=import-outside-toplevel
  from serving import inference, metrics  # pylint: disable=import-outside-toplevel
  from serving.manager import Manager  # pylint: disable=import-outside-toplevel
  from serving.servable import Servable  # pylint: disable=import-outside-toplevel

  servable = Servable("ncf", 1, model_dir)
  request = predict_pb2.PredictRequest()
  request.model_spec.name, request.model_spec.signature_name = "ncf", "predict"
  for key, value in (("user_id", b"1"), ("movie_id", b"2")):
    request.inputs[key].CopyFrom(tf.make_tensor_proto([value]))
  pending = inference.begin_predict(servable, request)
  outputs = servable.run(pending.signature, pending.inputs)
  recorder = metrics.Metrics()
  manager = Manager(lambda name, version, path: servable)
  with tempfile.TemporaryDirectory() as base:  # the server's view, <base>/<version>, read once when applied
    (Path(base) / "1").symlink_to(model_dir.resolve())
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name="ncf", base_path=base, model_platform="tensorflow")
    manager.apply_config(config)
  wire = request.SerializeToString()

  def loop_path() -> None:
    parsed = predict_pb2.PredictRequest.FromString(wire)
    with manager.servable(parsed.model_spec) as found:
      checked = inference.begin_predict(found, parsed)
      response = inference.finish_predict(found, checked, outputs)
    recorder.record_request("ncf", "predict", "GRPC", "OK", 1e-3, found.version)
    response.SerializeToString()

  def best_us(step) -> float:
    times = []
    for _ in range(3):
      started = time.process_time()
      for _ in range(calls):
        step()
      times.append((time.process_time() - started) / calls * 1e6)
    return min(times)

  return {"begin_predict": best_us(lambda: inference.begin_predict(servable, request)),
          "finish_predict": best_us(lambda: inference.finish_predict(servable, pending, outputs)),
          "record_request": best_us(lambda: recorder.record_request("ncf", "predict", "GRPC", "OK", 1e-3, 1)),
          "loop_path": best_us(loop_path)}


def model_server_command(base_path: Path, batching_file: Optional[Path], flags: Sequence[str] = ()) -> List[str]:
  """`recsys serve --server embedded` on a free port (batching with `batching_file`), with `flags` added."""
  command = [sys.executable, "-m", "pipeline.cli", "serve", "--server", "embedded", "--port", "0",
             "--model_name", "ncf", "--model_base_path", str(base_path), "--file_system_poll_wait_seconds", "0"]
  if batching_file is not None:
    command += ["--enable_batching", "--batching_parameters_file", str(batching_file)]
  return command + list(flags)


def predict_response(target: str, users: List[str], movies: List[str]) -> bytes:
  """A Predict answer of the server at `target` (1 user x 1 movie), serialised: what the gRPC floor answers."""
  request = request_factory(client_lib.model_spec(DEFAULT_MODEL), signatures.PREDICT, users, movies, 1)(
      random.Random(0))
  with grpc.insecure_channel(target) as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    return stub.Predict(request, timeout=30).SerializeToString()


class ServerProcess:
  """A server started by `command` in its own process; it prints "Serving gRPC on port N" first."""

  def __init__(self, command: List[str]):
    self.process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                    text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    line = self.process.stdout.readline()
    port = re.search(r"Serving gRPC on port (\d+)", line)
    if port is None:
      self.stop()
      sys.exit(f"the server did not start: {line!r}")
    self.target = f"localhost:{port[1]}"

  def stop(self) -> None:
    self.process.send_signal(signal.SIGTERM)
    self.process.wait(timeout=60)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model_dir", type=Path, default=None,
                      help="An exported NCF SavedModel; default: build an ml-100k-shaped one (cached).")
  parser.add_argument("--cache_dir", type=Path, default=Path.home() / ".cache" / "recsys" / "bench")
  parser.add_argument("--seconds", type=float, default=8.0, help="Duration of each concurrency-1 phase.")
  parser.add_argument("--rounds", type=int, default=5, help="Alternating rounds of the 32-caller phases.")
  parser.add_argument("--round_seconds", type=float, default=3.0, help="Duration of each 32-caller phase.")
  parser.add_argument("--calls", type=int, default=2000, help="In-process calls per signature.")
  parser.add_argument("--compare_batching_file", type=Path, default=None,
                      help="Another BatchingParameters file to measure beside the shipped one (tuning).")
  parser.add_argument("--compare_server_flags", default="",
                      help="Server flags to measure beside the shipped configuration (the shipped batching file "
                           "plus these), e.g. \"--tensorflow_inter_op_parallelism=-1\".")
  args = parser.parse_args()

  model_dir = args.model_dir
  model_source = f"--model_dir {model_dir}"
  if model_dir is None:
    model_dir = args.cache_dir / "ncf-ml100k-shaped-2"  # 2: exports that restore as TF Serving restores them
    model_source = ("ml-100k-shaped NeuMF (943 users x 1682 movies, default ModelConfig, 1 epoch on made-up "
                    "ratings, exported by components.model_export.export_serving_model)")
    if not (model_dir / "saved_model.pb").exists():
      shutil.rmtree(model_dir, ignore_errors=True)
      build_ml100k_shaped_model(model_dir)
  # Ids as MovieLens (and the made-up data) spell them; ids outside a model's vocabulary take its OOV path.
  users = [str(u) for u in range(1, ML100K_USERS + 1)]
  movies = [str(m) for m in range(1, ML100K_MOVIES + 1)]

  result = {"benchmark": "serving", "model": model_source, "machine": machine(),
            "batching_parameters_file": str(BATCHING_FILE.relative_to(REPO))}
  result["in_process"] = in_process_floor(model_dir, users, movies, args.calls)
  result["server_python_per_predict_cpu_us"] = server_python_per_predict(model_dir, args.calls)

  # name -> (BatchingParameters file or None for batching off, extra server flags)
  configs = {"batching_on": (BATCHING_FILE, ()), "batching_off": (None, ())}
  if args.compare_batching_file is not None:
    configs["batching_compared"] = (args.compare_batching_file, ())
  if args.compare_server_flags:
    configs["batching_on_flags"] = (BATCHING_FILE, tuple(args.compare_server_flags.split()))
    result["compared_server_flags"] = args.compare_server_flags
  with tempfile.TemporaryDirectory() as work:
    base = Path(work) / "ncf"
    base.mkdir()
    (base / "1").symlink_to(model_dir.resolve())
    servers = {name: ServerProcess(model_server_command(base, path, flags))
               for name, (path, flags) in configs.items()}
    try:
      on = servers["batching_on"].target
      ids_file = Path(work) / "ids.json"
      ids_file.write_text(json.dumps({"users": list(users), "movies": list(movies)}))
      response_file = Path(work) / "predict_response.bin"
      response_file.write_bytes(predict_response(on, users, movies))
      floor_command = [sys.executable, str(REPO / "bench" / "grpc_floor_server.py"), "--response", str(response_file)]
      servers[GRPC_FLOOR] = ServerProcess(floor_command)
      servers[GRPC_FLOOR_BATCHED] = ServerProcess(floor_command + ["--batch_thread"])
      # The latency targets are for the shipped configuration (no prefix); "flags_": --compare_server_flags.
      result["concurrency_1"] = {}
      for prefix, name in C1_SERVERS.items():
        if name in servers:
          target = servers[name].target
          result["concurrency_1"][f"{prefix}predict_1x1"] = load_phase(target, "predict", 1, args.seconds, ids_file)
          result["concurrency_1"][f"{prefix}recommend"] = load_phase(target, "recommend", 1, args.seconds, ids_file)
      for floor in (GRPC_FLOOR, GRPC_FLOOR_BATCHED):
        result["concurrency_1"][f"{floor}_predict_1x1"] = load_phase(servers[floor].target, "predict", 1,
                                                                     args.seconds, ids_file)
      rounds = {name: {"predict_1x1": [], "recommend": []} for name in configs}
      for floor in (GRPC_FLOOR, GRPC_FLOOR_BATCHED):
        rounds[floor] = {"predict_1x1": []}  # they answer Predict's response to every request
      for _ in range(args.rounds):
        for name, server in servers.items():
          rounds[name]["predict_1x1"].append(load_phase(server.target, "predict", 32, args.round_seconds, ids_file))
          if "recommend" in rounds[name]:
            rounds[name]["recommend"].append(load_phase(server.target, "recommend", 32, args.round_seconds,
                                                        ids_file))
    finally:
      for server in servers.values():
        server.stop()
  result["concurrency_32"] = {
      name: {mode: {"median_qps": float(np.median([r["qps"] for r in runs])),
                    "median_p99_ms": float(np.median([r["latency_ms"]["p99"] for r in runs])),
                    "errors": sum(r["errors"] for r in runs),
                    "median_client_cpu_ms_per_request": float(np.median([r["client_cpu_ms_per_request"]
                                                                         for r in runs])),
                    "qps_by_round": [round(r["qps"], 1) for r in runs]}
             for mode, runs in by_mode.items()}
      for name, by_mode in rounds.items()}

  c1, c32 = result["concurrency_1"], result["concurrency_32"]
  floor, eager = result["in_process"]["session"], result["in_process"]["eager"]
  result["summary"] = {
      "predict_1x1_p99_ms": c1["predict_1x1"]["latency_ms"]["p99"],
      # Over the TF2 signature as a Python user calls it (the floor of earlier runs of this bench).
      "predict_1x1_over_eager_call_p50_ms": c1["predict_1x1"]["latency_ms"]["p50"] - eager["predict_1x1"]["p50"],
      # The same client against a server that answers a fixed response: what gRPC in Python costs by itself.
      "grpc_floor_predict_1x1_p50_ms": c1["grpc_floor_predict_1x1"]["latency_ms"]["p50"],
      "recommend_p99_ms": c1["recommend"]["latency_ms"]["p99"],
      "recommend_over_eager_call_p50_ms": c1["recommend"]["latency_ms"]["p50"] - eager["recommend"]["p50"],
      # The most batching could gain for `recommend` with no server cost at all: 1-user calls vs 32-user calls.
      "recommend_in_process_batch_gain": (IN_PROCESS_BATCH * floor["recommend"]["p50"]
                                          / floor[f"recommend_batch_{IN_PROCESS_BATCH}"]["p50"]),
      # The most any batching could gain here: the gRPC floor's QPS (no model, no server work) over batching off.
      "predict_c32_grpc_floor_over_off": (c32[GRPC_FLOOR]["predict_1x1"]["median_qps"]
                                          / c32["batching_off"]["predict_1x1"]["median_qps"]),
      # The same through the server's batch queue: what batching in this server's design could gain at most.
      "predict_c32_batch_thread_floor_over_off": (c32[GRPC_FLOOR_BATCHED]["predict_1x1"]["median_qps"]
                                                  / c32["batching_off"]["predict_1x1"]["median_qps"]),
      "grpc_floor_batch_thread_predict_1x1_p50_ms": c1[f"{GRPC_FLOOR_BATCHED}_predict_1x1"]["latency_ms"]["p50"],
      # Time per request (us of the two cores, which the client shares) that 3x batching off's Predict throughput
      # leaves beside the gRPC floor's own: the server's Python per Predict ("loop_path") would have to fit in it.
      "predict_c32_3x_budget_us_over_grpc_floor": (1e6 / (3 * c32["batching_off"]["predict_1x1"]["median_qps"])
                                                   - 1e6 / c32[GRPC_FLOOR]["predict_1x1"]["median_qps"]),
      "errors": sum(c1[m]["errors"] for m in c1) + sum(v["errors"] for by in c32.values() for v in by.values()),
  }
  for prefix, name in C1_SERVERS.items():
    if name in c32:
      result["summary"].update(overhead_and_gain(c1, c32, floor, prefix, name))
  print(json.dumps(result, indent=2))


def overhead_and_gain(c1: Dict, c32: Dict, floor: Dict, prefix: str, name: str) -> Dict[str, float]:
  """For the batching server `name` (its concurrency-1 phases keyed with `prefix`): p50 over the model as the server
  runs it in process (gRPC both ways, checks, conversions, batching), and QPS at 32 callers over batching off."""
  result = {}
  for mode, signature in (("predict_1x1", "predict"), ("recommend", "recommend")):
    result[f"{prefix}{mode}_server_overhead_p50_ms"] = c1[f"{prefix}{mode}"]["latency_ms"]["p50"] - floor[mode]["p50"]
    result[f"{prefix}{signature}_c32_qps_on_over_off"] = (c32[name][mode]["median_qps"]
                                                          / c32["batching_off"][mode]["median_qps"])
  return result


def load_phase(target: str, mode: str, concurrency: int, seconds: float, ids_file: Path) -> Dict:
  """Load from `recsys loadtest` (the TF-free client, 1 movie per Predict) in a process of its own, so that the
  client is what a user runs and not this process with TensorFlow and its models: QPS, latency, errors, client CPU
  per request."""
  done = subprocess.run([sys.executable, "-m", "pipeline.cli", "loadtest", "--target", target, "--mode", mode,
                         "--concurrency", str(concurrency), "--duration", str(seconds), "--ids", str(ids_file),
                         "--json"], cwd=REPO, capture_output=True, text=True, check=False)
  if done.returncode not in (0, 1):  # 1: the run had errors, which the result counts
    sys.exit(f"recsys loadtest failed ({done.returncode}): {done.stderr[-2000:]}")
  result = json.loads(done.stdout)
  return {"qps": result["qps"], "latency_ms": result["latency_ms"], "errors": sum(result["errors"].values()),
          "requests": result["requests"], "client_cpu_ms_per_request": result["client_cpu_ms_per_request"]}


def machine() -> Dict[str, str]:
  lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
  fields = {key.strip(): value.strip() for key, value in (line.split(":", 1) for line in lscpu.splitlines()
                                                           if ":" in line)}
  # "AMD EPYC" names VMs of several generations whose speed differs 2x: family and model tell them apart.
  return {"cpus": str(os.cpu_count()), "cpu": fields.get("Model name", ""),
          "cpu_family_model": f"{fields.get('CPU family', '')}/{fields.get('Model', '')}",
          "python": platform.python_version(), "tensorflow": tf.__version__}


if __name__ == "__main__":
  main()
