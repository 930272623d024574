"""Test setup: Keras 3 before any TensorFlow import, the optional shared data directory, and the tiny NeuMF export
that several files serve."""
import components.keras3  # noqa: F401  (first: Keras 3 before TensorFlow)
import fcntl
import os
import shutil

from pathlib import Path

import pytest


def shared_dir() -> Path:
  """../shared beside the checkout (or $RECSYS_SHARED_DIR); tests skip what needs it when absent."""
  return Path(os.environ.get("RECSYS_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared"))


@pytest.fixture
def movielens_dir():
  """Returns a function: release name -> its directory under shared/data/movielens, or skips the test."""
  def find(name: str) -> Path:
    path = shared_dir() / "data" / "movielens" / name
    if not path.is_dir():
      pytest.skip(f"{path} not present")
    return path
  return find


@pytest.fixture(scope="session")
def tiny_ncf_export(tmp_path_factory, worker_id) -> Path:
  """tests/support/tiny_model.export_tiny_ncf_model's SavedModel, built once per test run (about 10 s) and shared:
  copy it before changing it. Under xdist the first worker that asks builds it in the run's shared temporary
  directory while holding a file lock; the others wait for it and reuse it."""
  from tests.support.tiny_model import export_tiny_ncf_model

  if worker_id == "master":  # one process: nothing to share
    path = tmp_path_factory.mktemp("tiny-ncf") / "export"
    export_tiny_ncf_model(path)
    return path
  shared = tmp_path_factory.getbasetemp().parent  # this run's directory, the parent of every worker's own
  path = shared / "tiny-ncf-export"
  with (shared / "tiny-ncf-export.lock").open("w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not path.is_dir():
      staging = shared / "tiny-ncf-export.staging"
      shutil.rmtree(staging, ignore_errors=True)  # what a worker that failed here left
      export_tiny_ncf_model(staging)
      staging.rename(path)  # complete or absent: a failed build leaves no half export behind for the others
  return path
