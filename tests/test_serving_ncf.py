"""The embedded server on the project's NCF export: exact answers, batching, reload under load, CLI, demo."""
import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import numpy as np
import portpicker
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from pipeline import cli
from pipeline.recommender import demo
from pipeline.recommender.client import RecommenderClient
from pipeline.recommender.loadtest import run_loadtest
from tests.support.serving import REPO
from tests.support.serving import predict_request
from tests.support.serving import publish_version
from tests.support.serving import running_server
from tests.support.serving import wait_until

pytestmark = pytest.mark.slow

BATCHING_FILE = REPO / "serving" / "config" / "batching_parameters.txt"
USERS = [str(i) for i in range(1, 61)]  # export_tiny_ncf_model's vocabulary
MOVIES = [str(i) for i in range(1, 41)]
AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
END = get_model_status_pb2.ModelVersionStatus.END


@pytest.fixture(scope="module")
def in_process(tiny_ncf_export):
  return tf.saved_model.load(str(tiny_ncf_export)).signatures


@pytest.fixture(scope="module")
def movies_csv(tmp_path_factory) -> Path:
  path = tmp_path_factory.mktemp("movies") / "movies.csv"
  path.write_text("movieId,title,genres\n" + "".join(f'{m},"Movie {m}, The (19{m:0>2})",Drama\n' for m in MOVIES))
  return path


@pytest.fixture(scope="module")
def server(tiny_ncf_export, tmp_path_factory):
  base = tmp_path_factory.mktemp("models") / "ncf"
  base.mkdir()
  publish_version(tiny_ncf_export, base, 1)
  with running_server(model_name="ncf", model_base_path=str(base), enable_batching=True,
                      batching_parameters_file=str(BATCHING_FILE), file_system_poll_wait_seconds=0,
                      rest_api_port=-1) as running:
    yield running


@pytest.fixture(scope="module")
def target(server) -> str:
  return f"localhost:{server.grpc_port}"


def in_process_call(signature, **inputs):
  return {key: value.numpy() for key, value in signature(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def test_predict_matches_the_in_process_call_exactly(target, in_process):
  movies = ["1", "2", "39", "not-a-movie"]
  with RecommenderClient(target) as client:
    predictions = client.predict("7", movies)
  expected = in_process_call(in_process["predict"], user_id=["7"] * 4, movie_id=movies)
  for key in ("score", "interaction", "liked"):
    np.testing.assert_array_equal(np.array([getattr(p, key) for p in predictions], np.float32), expected[key])
  assert [p.movie_id for p in predictions] == movies


@pytest.mark.parametrize("user", ["1", "42", "never-seen-user"])
def test_recommend_matches_the_in_process_call_exactly(target, in_process, user):
  with RecommenderClient(target) as client:
    recommendations = client.recommend(user)
  expected = in_process_call(in_process["recommend"], user_id=[user])
  assert [r.movie_id.encode() for r in recommendations] == list(expected["movie_ids"][0])
  np.testing.assert_array_equal(np.array([r.score for r in recommendations], np.float32), expected["scores"][0])


def test_output_filter_returns_only_the_named_outputs(target, in_process):
  with grpc.insecure_channel(target) as channel:
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(predict_request(
        "ncf", {"user_id": np.array([b"3"], object), "movie_id": np.array([b"5"], object)}, "predict",
        output_filter=["score"]))
  assert set(response.outputs) == {"score"}
  np.testing.assert_array_equal(tf.make_ndarray(response.outputs["score"]),
                                in_process_call(in_process["predict"], user_id=["3"], movie_id=["5"])["score"])


def test_rest_row_format_with_named_string_inputs(server, in_process):
  import urllib.request  # pylint: disable=import-outside-toplevel
  body = {"signature_name": "predict", "instances": [{"user_id": "2", "movie_id": "3"},
                                                     {"user_id": "2", "movie_id": "4"}]}
  request = urllib.request.Request(f"http://localhost:{server.rest_port}/v1/models/ncf:predict",
                                   data=json.dumps(body).encode(), method="POST")
  with urllib.request.urlopen(request, timeout=30) as response:
    predictions = json.loads(response.read())["predictions"]
  expected = in_process_call(in_process["predict"], user_id=["2", "2"], movie_id=["3", "4"])
  assert sorted(predictions[0]) == ["interaction", "liked", "score"]
  np.testing.assert_array_equal(np.array([p["score"] for p in predictions], np.float32), expected["score"])


def test_concurrent_predicts_are_not_mixed_up(target, in_process):
  """Batched together, each caller still gets the scores of its own (user, movie) pairs."""
  def caller(i):
    with RecommenderClient(target) as client:
      for j in range(8):
        movies = [MOVIES[(i * 7 + j + k) % len(MOVIES)] for k in range(1 + (i + j) % 3)]
        got = [p.score for p in client.predict(USERS[i], movies)]
        expected = in_process_call(in_process["predict"], user_id=[USERS[i]] * len(movies), movie_id=movies)
        # Batch composition may change float rounding in the matmuls; a mixed-up row would be far off.
        np.testing.assert_allclose(got, expected["score"], rtol=1e-5, atol=1e-7)

  with concurrent.futures.ThreadPoolExecutor(12) as pool:
    list(pool.map(caller, range(12)))


def test_reload_under_load_fails_no_request(tiny_ncf_export, tmp_path):
  """A new version published while the load tester runs takes over traffic; no request fails. A corrupt
  version is then reported and does not disturb serving; once its files are complete it loads."""
  base = tmp_path / "ncf"
  base.mkdir()
  publish_version(tiny_ncf_export, base, 1)
  with running_server(model_name="ncf", model_base_path=str(base), enable_batching=True,
                      batching_parameters_file=str(BATCHING_FILE), file_system_poll_wait_seconds=1) as server:
    target = f"localhost:{server.grpc_port}"
    results, stop = [], threading.Event()

    def load():
      while not stop.is_set():
        results.append(run_loadtest(target, "predict", concurrency=4, duration_s=1.0, users=USERS, movies=MOVIES))

    loader = threading.Thread(target=load)
    loader.start()
    try:
      wait_until(lambda: results, "the first load-test round")
      publish_version(tiny_ncf_export, base, 2)
      with RecommenderClient(target) as client:
        states = lambda: {s.version: s.state for s in client.status().model_version_status}  # noqa: E731
        wait_until(lambda: states() == {2: AVAILABLE, 1: END}, "version 2 to replace version 1")
        rounds_after_reload = len(results)
        wait_until(lambda: len(results) > rounds_after_reload, "a load-test round on version 2")
    finally:
      stop.set()
      loader.join()
    assert all(not r.errors for r in results), [r.errors for r in results if r.errors]
    assert {"1", "2"} <= set().union(*(r.versions for r in results))
    assert set(results[-1].versions) == {"2"}

    (base / "3").mkdir()
    (base / "3" / "saved_model.pb").write_bytes(b"half-written")
    with RecommenderClient(target) as client:
      status = lambda: {s.version: s for s in client.status().model_version_status}  # noqa: E731
      wait_until(lambda: 3 in status() and status()[3].state == END, "version 3 to fail loading")
      assert status()[3].status.error_code != 0 and status()[3].status.error_message
      assert status()[2].state == AVAILABLE
      assert client.predict("1", ["1"])[0].score >= 0
      for item in tiny_ncf_export.iterdir():  # the rest of the files arrive: the version loads
        target_path = base / "3" / item.name
        if item.is_dir():
          shutil.copytree(item, target_path)
        else:
          shutil.copyfile(item, target_path)
      wait_until(lambda: status()[3].state == AVAILABLE and status()[3].status.error_code == 0,
                 "version 3 to load once complete")


def test_cli_predict_recommend_status_metadata(target, movies_csv, capsys):
  with RecommenderClient(target) as client:
    expected = client.predict("1", ["2", "3"])
    top = client.recommend("1", 3)
  assert cli.main(["predict", "--target", target, "--user", "1", "--movies", "2,3", "--titles",
                   str(movies_csv)]) == 0
  out = capsys.readouterr().out
  assert "Movie 2, The (1902)" in out and f"{expected[0].score:7.4f}" in out and "not in the model" not in out
  assert cli.main(["recommend", "--target", target, "--user", "1", "-k", "3", "--titles", str(movies_csv)]) == 0
  out = capsys.readouterr().out
  assert [line.split()[1] for line in out.splitlines()[1:4]] == [r.movie_id for r in top]
  assert f"Movie {top[0].movie_id}, The" in out
  assert cli.main(["recommend", "--target", target, "--user", "somebody-new"]) == 0
  assert "'somebody-new' was not in the model's training vocabulary" in capsys.readouterr().out
  assert cli.main(["status", "--target", target]) == 0
  assert "ncf version 1: AVAILABLE" in capsys.readouterr().out
  assert cli.main(["metadata", "--target", target]) == 0
  out = capsys.readouterr().out
  assert "recommend: (user_id string[None]) -> (movie_ids string[None, 10], scores float[None, 10])" in out


def test_cli_explains_unreachable_servers_and_bad_input(target, capsys):
  free = f"localhost:{portpicker.pick_unused_port()}"
  assert cli.main(["status", "--target", free, "--timeout", "2"]) == 1
  assert f"no model server at {free}" in capsys.readouterr().err
  assert cli.main(["loadtest", "--target", free, "--timeout", "1", "--duration", "1"]) == 1
  assert f"no model server at {free} (not reachable in 1.0s)" in capsys.readouterr().err
  assert cli.main(["recommend", "--target", target, "--user", "1", "-k", "11"]) == 2
  assert "at most 10" in capsys.readouterr().err
  assert cli.main(["predict", "--target", target, "--model-name", "nope", "--user", "1", "--movies", "1"]) == 1
  assert "NOT_FOUND: Servable not found for request: Latest(nope)" in capsys.readouterr().err


def test_cli_loadtest_closed_and_open_loop(target, capsys):
  assert cli.main(["loadtest", "--target", target, "--mode", "recommend", "--concurrency", "2",
                   "--duration", "1", "--json"]) == 0
  result = json.loads(capsys.readouterr().out)
  assert result["loop"] == "closed" and result["ok"] == result["requests"] > 0 and result["errors"] == {}
  assert set(result["latency_ms"]) == {"p50", "p90", "p99", "p99.9", "mean", "max"}
  assert cli.main(["loadtest", "--target", target, "--rate", "50", "--duration", "1"]) == 0
  table = capsys.readouterr().out
  assert "open loop" in table and "errors: none" in table


def test_demo_serves_the_pushed_model_and_prints_titles(tiny_ncf_export, movies_csv, tmp_path, in_process, capsys):
  (tmp_path / "ncf").mkdir()
  publish_version(tiny_ncf_export, tmp_path / "ncf", 5)
  result = demo.run_demo(tmp_path, "ncf", movies_csv, "4")
  expected = in_process_call(in_process["recommend"], user_id=["4"])
  assert result["version"] == 5 and not result["unknown_user"]
  assert [r["movie_id"].encode() for r in result["recommend"]] == list(expected["movie_ids"][0])
  assert [p["movie_id"] for p in result["predict"]] == [r["movie_id"] for r in result["recommend"][:3]]
  out = capsys.readouterr().out
  assert f"Movie {result['recommend'][0]['movie_id']}, The" in out and "now stopped" in out


def test_recsys_serve_with_the_committed_configs(tiny_ncf_export, tmp_path):
  """`make serve`'s command in a subprocess: models.config resolved onto a local serving dir, labels on the two
  pushed versions, batching and metrics on; SIGTERM stops it cleanly."""
  serving_dir = tmp_path / "serving"
  (serving_dir / "ncf").mkdir(parents=True)
  publish_version(tiny_ncf_export, serving_dir / "ncf", 1700000000)
  publish_version(tiny_ncf_export, serving_dir / "ncf", 1700000100)
  rest_port = portpicker.pick_unused_port()
  config = REPO / "serving" / "config"
  process = subprocess.Popen(
      [sys.executable, "-m", "pipeline.cli", "serve", "--server", "embedded", "--port", "0",
       "--model_config_file", str(config / "models.config"), "--serving_dir", str(serving_dir),
       "--enable_batching", "--batching_parameters_file", str(config / "batching_parameters.txt"),
       "--monitoring_config_file", str(config / "monitoring.config"), "--rest_api_port", str(rest_port)],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
  try:
    line = process.stdout.readline()
    port = re.search(r"Serving gRPC on port (\d+)", line)
    assert port, f"unexpected first line: {line!r} (exit status {process.poll()})"
    target = f"localhost:{port[1]}"
    with RecommenderClient(target, version_label="canary") as canary, \
        RecommenderClient(target, version_label="stable") as stable:
      assert canary.metadata().model_spec.version.value == 1700000100
      assert stable.metadata().model_spec.version.value == 1700000000
      canary.predict("1", ["1"])
    import urllib.request  # pylint: disable=import-outside-toplevel
    with urllib.request.urlopen(f"http://localhost:{rest_port}/monitoring/prometheus/metrics", timeout=30) as r:
      assert ':tensorflow:serving:request_count_total{model_name="ncf",status="OK"}' in r.read().decode()
  finally:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
