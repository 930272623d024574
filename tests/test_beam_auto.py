"""`--beam-mode auto` (the default): in_memory for small inputs, multi_processing for large ones."""
import os

import pytest

from pipeline.config import BeamConfig, DataConfig
from pipeline.data import size
from pipeline.runners import beam


@pytest.mark.parametrize("ratings, expected", [
    (None, ()),  # in_memory, one worker: Beam's default, so no arguments (and no sdist of TFX built by TFX)
    (100_000, ()),
    (1_000_209, ("--direct_running_mode=multi_processing", f"--direct_num_workers={max(2, os.cpu_count())}")),
])
def test_auto_mode_follows_the_input_size(ratings, expected):
  assert beam.beam_args(BeamConfig(), ratings=ratings) == expected


def test_a_chosen_mode_is_kept_whatever_the_size():
  assert beam.resolve_auto(BeamConfig(mode="in_memory"), ratings=25_000_095).mode == "in_memory"
  assert beam.beam_args(BeamConfig(mode="in_memory"), ratings=25_000_095) == ()
  assert beam.beam_args(BeamConfig(mode="in_memory", workers=2)) == (
      "--direct_running_mode=in_memory", "--direct_num_workers=2")
  assert beam.beam_args(BeamConfig(mode="in_memory", extra_args=("--max_bundle_size=10",))) == (
      "--direct_running_mode=in_memory", "--direct_num_workers=1", "--max_bundle_size=10")


def test_expected_ratings_counts_a_copy_on_disk(tmp_path):
  (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,1\n1,2,3.0,2\n2,1,5.0,3\n")
  (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,A,Drama\n2,B,Comedy\n")
  assert size.expected_ratings(DataConfig(dataset="ml-latest", data_dir=tmp_path)) == 3
  assert size.expected_ratings(DataConfig(synthetic_ratings=1234)) == 1234
  assert size.expected_ratings(DataConfig(dataset="ml-25m")) == 25_000_095


def test_expected_ratings_of_real_ml_100k(movielens_dir):
  assert size.expected_ratings(DataConfig(dataset="ml-100k", data_dir=movielens_dir("ml-100k"))) == 100_000
