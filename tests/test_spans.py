"""Spans: periods from timestamps, and prepare's span layout as ImportExampleGen reads it."""
import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from components import features
from pipeline.config import DataConfig
from pipeline.data import prepare
from pipeline.data import spans
from tests.support import span_ratings
from tests.support.testdata import read_split

DAY = spans.DAY_SECONDS



def value(example, name):
  feature = example.features.feature[name]
  values = list(getattr(feature, feature.WhichOneof("kind")).value)
  return [v.decode() if isinstance(v, bytes) else v for v in values]


def seconds(text: str) -> int:
  return int(pd.Timestamp(text).timestamp())


@pytest.mark.parametrize("text, expected", [("week", spans.SpanPeriod("week")), ("month", spans.SpanPeriod("month")),
                                            ("year", spans.SpanPeriod("year")),
                                            ("10-days", spans.SpanPeriod("days", 10)),
                                            ("1-day", spans.SpanPeriod("days", 1))])
def test_span_by_forms(text, expected):
  assert spans.parse_span_by(text) == expected


@pytest.mark.parametrize("text", ["weekly", "0-days", "days", "-3-days", "3 days", ""])
def test_malformed_span_by_says_what_is_expected(text):
  with pytest.raises(spans.SpanError, match="expected week, month, year or N-days"):
    spans.parse_span_by(text)


def test_weeks_start_on_monday_and_empty_weeks_get_no_span_number():
  # Sunday 2024-01-07 23:59:59 ends the first ISO week; 2024-01-08 is Monday; nothing in the week of 01-15.
  times = np.array([seconds("2024-01-03"), seconds("2024-01-07 23:59:59"), seconds("2024-01-08"),
                    seconds("2024-01-25")])
  numbers, periods = spans.assign_spans(times, spans.parse_span_by("week"))
  assert numbers.tolist() == [1, 1, 2, 3]
  assert [p.label() for p in periods] == ["2024-01-01..2024-01-08", "2024-01-08..2024-01-15",
                                          "2024-01-22..2024-01-29"]


def test_months_and_n_days():
  times = np.array([seconds("1997-09-20 10:00"), seconds("1997-10-01"), seconds("1997-09-30 23:59"),
                    seconds("1998-04-22")])
  numbers, periods = spans.assign_spans(times, spans.parse_span_by("month"))
  assert numbers.tolist() == [1, 2, 1, 3]
  assert periods[0] == spans.Period(seconds("1997-09-01"), seconds("1997-10-01"))
  assert periods[2].label() == "1998-04-01..1998-05-01"
  # N-day periods start at 00:00 UTC of the earliest rating's day.
  numbers, periods = spans.assign_spans(times, spans.parse_span_by("10-days"))
  assert periods[0].start == seconds("1997-09-20") and periods[0].end == seconds("1997-09-30")
  assert numbers.tolist() == [1, 2, 2, 3]
  assert periods[2].start == seconds("1997-09-20") + 21 * 10 * DAY


@pytest.fixture(scope="module")
def weekly(tmp_path_factory):
  """Four weeks of ratings prepared by week with a window of two spans: spans 1, 2 and 3."""
  work = tmp_path_factory.mktemp("spans")
  shape = span_ratings.WeeklyRatings()
  table = span_ratings.write(shape, work / "raw")
  config = DataConfig(dataset="ml-latest", data_dir=work / "raw", cache_dir=work / "cache", eval_negatives=12,
                      evaluator_negatives=4, span_by="week", span_window=2)
  return shape, table, config, prepare.prepare_examples(config, work / "examples")


def _week(table: pd.DataFrame, week: int) -> pd.DataFrame:
  start = span_ratings.FIRST_MONDAY + (week - 1) * span_ratings.WEEK_SECONDS
  return table[(table.timestamp >= start) & (table.timestamp < start + span_ratings.WEEK_SECONDS)]


def _pairs(examples) -> set:
  return {(int(value(e, features.USER_ID)[0]), int(value(e, features.MOVIE_ID)[0])) for e in examples}


def test_each_span_trains_on_its_week_and_is_judged_on_the_next(weekly):
  shape, table, _, data = weekly
  assert [s.span for s in data.spans] == list(range(1, shape.weeks))
  assert sorted(p.name for p in data.examples_dir.glob("span-*")) == [f"span-{n}" for n in range(1, shape.weeks)]
  for prepared in data.spans:
    folder = data.examples_dir / f"span-{prepared.span}"
    train = read_split(folder / "train")
    held_out = read_split(folder / "eval")
    rated = [e for e in held_out if value(e, features.IS_SAMPLED) == [0]]
    this_week, next_week = _week(table, prepared.span), _week(table, prepared.span + 1)
    # Nothing dropped: every rating of the span's week is in train, every rating of the next week in eval.
    assert _pairs(train) == set(zip(this_week.user_id, this_week.movie_id)) and len(train) == len(this_week)
    assert _pairs(rated) == set(zip(next_week.user_id, next_week.movie_id)) and len(rated) == len(next_week)
    assert max(value(e, features.TIMESTAMP)[0] for e in train) < min(value(e, features.TIMESTAMP)[0] for e in rated)
    assert prepared.rows == {"train": len(train), "eval": len(held_out), "ranking": prepared.rows["ranking"]}
    assert prepared.train_period == spans.Period(
        span_ratings.FIRST_MONDAY + (prepared.span - 1) * span_ratings.WEEK_SECONDS,
        span_ratings.FIRST_MONDAY + prepared.span * span_ratings.WEEK_SECONDS).label()
  assert data.rows == data.spans[-1].rows


def test_cold_users_are_those_without_ratings_in_the_window_and_stay_in_eval(weekly):
  shape, table, config, data = weekly
  last = data.spans[-1]
  window = pd.concat([_week(table, week) for week in range(last.span - config.span_window + 1, last.span + 1)])
  next_week = _week(table, last.span + 1)
  cold = set(next_week.user_id) - set(window.user_id)
  assert len(cold) == shape.late_users  # the users who joined in the final week
  assert (last.cold_eval_users, last.cold_eval_ratings) == (len(cold), int(next_week.user_id.isin(cold).sum()))
  assert all(s.cold_eval_users == 0 for s in data.spans[:-1])
  held_out = read_split(data.examples_dir / f"span-{last.span}" / "eval")
  sampled = [e for e in held_out if value(e, features.IS_SAMPLED) == [1]]
  assert {u for u, _ in _pairs(sampled)} >= cold  # cold users get sampled movies like everyone else
  assert {value(e, features.USER_ACTIVITY)[0] for e in held_out
          if int(value(e, features.USER_ID)[0]) in cold} == {features.USER_ACTIVITY_BUCKETS[0][1]}
  manifest = json.loads((data.examples_dir / prepare.MANIFEST).read_text())
  assert manifest["spans"][-1]["cold_eval_users"] == len(cold)


def test_sampled_movies_come_from_the_window_and_were_never_rated(weekly):
  _, table, config, data = weekly
  rated_ever = set(zip(table.user_id, table.movie_id))
  for prepared in data.spans:
    folder = data.examples_dir / f"span-{prepared.span}"
    window = pd.concat([_week(table, week) for week in range(prepared.span - config.span_window + 1,
                                                              prepared.span + 1) if week >= 1])
    sampled = _pairs(e for e in read_split(folder / "eval")
                     if value(e, features.IS_SAMPLED) == [1])
    candidates = {(int(value(e, features.USER_ID)[0]), int(movie))
                  for e in read_split(folder / "ranking") for movie in value(e, features.MOVIE_ID)}
    assert sampled and candidates and not (sampled | candidates) & rated_ever
    assert {movie for _, movie in sampled | candidates} <= set(window.movie_id)


def test_example_gen_reads_the_layout_as_spans_and_picks_the_latest(weekly):
  from tfx.components.example_gen import utils
  from tfx.proto import example_gen_pb2, range_config_pb2

  _, _, _, data = weekly

  def span_read(range_config=None) -> int:
    # The patterns of pipeline/pipeline.py; TFX replaces {SPAN} in them, so each call gets its own.
    splits = [example_gen_pb2.Input.Split(name=name, pattern=f"{spans.SPAN_FOLDER_PATTERN}/{name}/*")
              for name in (features.TRAIN_SPLIT, features.EVAL_SPLIT, features.RANKING_SPLIT)]
    return utils.calculate_splits_fingerprint_span_and_version(str(data.examples_dir), splits, range_config)[1]

  assert span_read() == data.spans[-1].span
  assert span_read(range_config_pb2.RangeConfig(
      static_range=range_config_pb2.StaticRange(start_span_number=1, end_span_number=1))) == 1


def test_a_new_cut_replaces_the_old_spans(weekly, tmp_path):
  _, _, config, data = weekly
  out = tmp_path / "examples"
  weekly_data = prepare.prepare_examples(config, out)
  assert len(weekly_data.spans) == 3
  by_14_days = prepare.prepare_examples(dataclasses.replace(config, span_by="14-days"), out)
  assert [s.span for s in by_14_days.spans] == [1]
  assert sorted(p.name for p in out.glob("span-*")) == ["span-1"]
  assert data.spans == weekly_data.spans  # the same inputs give the same spans


def test_spans_need_two_periods(tmp_path):
  shape = span_ratings.WeeklyRatings(users=5, weeks=1, late_users=0)
  span_ratings.write(shape, tmp_path / "raw")
  config = DataConfig(dataset="ml-latest", data_dir=tmp_path / "raw", cache_dir=tmp_path / "cache",
                      eval_negatives=5, evaluator_negatives=2, span_by="month")
  with pytest.raises(spans.SpanError, match="1 period"):
    prepare.prepare_examples(config, tmp_path / "examples")


def test_prepare_command_prints_each_span_and_refuses_a_malformed_span_by(tmp_path, capsys):
  from pipeline import cli

  span_ratings.write(span_ratings.WeeklyRatings(users=12, weeks=3, late_users=2), tmp_path / "raw")
  prepare_args = ["data", "prepare", "--data-dir", str(tmp_path / "raw"), "--cache-dir", str(tmp_path / "cache"),
                  "--eval-negatives", "5", "--evaluator-negatives", "2", "--out", str(tmp_path / "examples")]
  assert cli.main([*prepare_args, "--span-by", "week", "--span-window", "2"]) == 0
  out = capsys.readouterr().out
  assert "span 1: train 2024-01-01..2024-01-08, eval 2024-01-08..2024-01-15" in out
  assert "span 2: train 2024-01-08..2024-01-15, eval 2024-01-15..2024-01-22" in out and "2 cold eval users" in out
  assert cli.main([*prepare_args, "--span-by", "weekly"]) == 2
  assert capsys.readouterr().err.strip() == (
      "error: --span-by 'weekly': expected week, month, year or N-days such as 10-days")
