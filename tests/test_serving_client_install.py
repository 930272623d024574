"""The client alone: installed into a fresh virtual environment with only grpcio, protobuf and numpy (the
`client` extra), it calls a running server without TensorFlow."""
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest

from tests.support.serving import HALF_PLUS_TWO
from tests.support.serving import REPO
from tests.support.serving import running_server
from tests.support.serving import tf_serving_testdata

CLIENT_REQUIREMENTS = ("grpcio==1.65.5", "protobuf==3.20.3", "numpy==1.26.4")  # setup.py's `client` extra
PACKAGES = ("components", "pipeline", "serving")
INDEX_HOST = "pypi.org"

CLIENT_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    from serving.client import ServingClient

    with ServingClient(sys.argv[1], "half_plus_two") as client:
      outputs = client.predict_arrays("", {"x": np.array([[1.0], [2.0]], np.float32)})
      states = [s.state for s in client.status().model_version_status]
      signatures = sorted(client.metadata().metadata["signature_def"].type_url.split("/")[-1:])
    assert not [m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow.")], "TensorFlow imported"
    print(outputs["y"].ravel().tolist(), states, signatures)
""")


NO_TENSORFLOW_SCRIPT = textwrap.dedent("""
    import sys
    from pipeline import cli
    for command in (["status"], ["metadata"], ["predict", "--user", "1", "--movies", "2"], ["recommend", "--user", "1"],
                    ["loadtest", "--duration", "0.1"]):
      assert cli.main(command + ["--target", "localhost:1", "--timeout", "0.2"]) == 1, command
    print(sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow.")))
""")


def test_client_commands_import_no_tensorflow():
  """recsys predict|recommend|status|metadata|loadtest, each against an unreachable server (exit status 1)."""
  answer = subprocess.run([sys.executable, "-c", NO_TENSORFLOW_SCRIPT], check=True, capture_output=True, text=True,
                          cwd=REPO, timeout=120)
  assert answer.stdout.strip() == "[]", answer


def test_status_imports_neither_numpy_nor_the_server_nor_the_kubeflow_runner():
  """What makes `recsys status` start in about half a second: it loads gRPC and the client protos only."""
  script = textwrap.dedent("""
      import sys
      from pipeline import cli
      assert cli.main(["status", "--target", "localhost:1", "--timeout", "0.2"]) == 1
      print(sorted(m for m in ("numpy", "serving.launcher", "pipeline.runners.kubeflow", "pandas") if m in sys.modules))
  """)
  answer = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True, cwd=REPO,
                          timeout=120)
  assert answer.stdout.strip() == "[]", answer


def _index_reachable() -> bool:
  try:
    socket.create_connection((INDEX_HOST, 443), timeout=5).close()
    return True
  except OSError:
    return False


@pytest.mark.slow
def test_client_installed_alone_calls_the_server(tmp_path):
  testdata = tf_serving_testdata()
  if not (REPO / "serving" / "client_protos" / "__init__.py").exists():
    pytest.fail("serving/client_protos is not generated: run `make setup`")
  if not _index_reachable():
    pytest.skip(f"{INDEX_HOST} is not reachable: cannot install grpcio/protobuf/numpy into a fresh venv")
  source = tmp_path / "source"
  source.mkdir()
  shutil.copy(REPO / "setup.py", source)
  for package in PACKAGES:
    shutil.copytree(REPO / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
  venv = tmp_path / "venv"
  subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
  pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
  subprocess.run(pip + ["--no-deps", str(source)], check=True, cwd=tmp_path)
  subprocess.run(pip + list(CLIENT_REQUIREMENTS), check=True)
  installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"], check=True,
                             capture_output=True, text=True).stdout
  assert "tensorflow" not in installed.lower(), installed

  with running_server(model_base_path=str(testdata / HALF_PLUS_TWO), model_name="half_plus_two",
                      file_system_poll_wait_seconds=0) as server:
    answer = subprocess.run([str(venv / "bin" / "python"), "-c", CLIENT_SCRIPT, f"localhost:{server.grpc_port}"],
                            check=True, capture_output=True, text=True, cwd=tmp_path, timeout=60)
  assert answer.stdout.strip() == "[2.5, 3.0] [30] ['tensorflow.serving.SignatureDefMap']", answer
