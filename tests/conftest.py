"""Test setup: Keras 3 before any TensorFlow import, and the optional shared data directory."""
import components.keras3  # noqa: F401  (first: Keras 3 before TensorFlow)
import os

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
