"""Bad data put into a prepared span on purpose (`recsys replay --inject SPAN:KIND`), to show the loop's defences.

- shuffled-labels: the span's train `liked` and `rating` are permuted among its rated pairs; the model learns
  nothing true about taste, so the Evaluator must not bless it.
- drifted-genres: half of the span's train rows get the genre DRIFT_GENRE alone; the drift check must stop the run
  before training (DriftConfig.genres_linf).
- corrupt-eval: the span's eval file holds ratings outside the schema's 0..5 and rows without a movie id; the
  ExampleValidator must find anomalies and the AnomaliesGate stop the run.

The files are rewritten in place (the pipeline's ImportExampleGen fingerprints them, so the span is imported
afresh) and the preparation's manifest is removed, so the next `prepare_examples` writes clean data again.
"""
import dataclasses
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from components import features
from pipeline.config import InjectionKind
from pipeline.data import prepare
from pipeline.data import spans

KINDS: Tuple[str, ...] = InjectionKind.__args__
DRIFT_GENRE = b"Documentary"
CORRUPT_RATING = 9.0
_SEED = 20


class InjectionError(ValueError):
  """A malformed `--inject`, or one naming a span that is not replayed."""


@dataclasses.dataclass(frozen=True)
class Injection:
  span: int
  kind: str

  def describe(self) -> str:
    return f"{self.kind} in span {self.span}"


def parse_injections(texts: Sequence[str]) -> Dict[int, Injection]:
  """{span: Injection} from "SPAN:KIND" texts; raises InjectionError naming the text and what is expected."""
  parsed: Dict[int, Injection] = {}
  for text in texts:
    span_text, _, kind = text.partition(":")
    if not span_text.isdigit() or kind not in KINDS:
      raise InjectionError(f"--inject {text!r}: expected SPAN:KIND with KIND one of {', '.join(KINDS)}")
    span = int(span_text)
    if span in parsed:
      raise InjectionError(f"--inject: span {span} is named twice")
    parsed[span] = Injection(span, kind)
  return parsed


def check_replayed(injections: Dict[int, Injection], replayed_spans: Sequence[int]) -> None:
  """Raises InjectionError when an injection names a span that is not replayed."""
  for span, injection in sorted(injections.items()):
    if span not in replayed_spans:
      raise InjectionError(f"--inject {span}:{injection.kind}: span {span} is not replayed (spans "
                           f"{replayed_spans[0]} to {replayed_spans[-1]})")


def inject(examples_dir: Path, injection: Injection) -> List[Path]:
  """Rewrites the files of `injection.span` under `examples_dir` as its kind says; returns the files changed."""
  span_dir = Path(examples_dir) / spans.SPAN_FOLDER_PATTERN.format(SPAN=injection.span)
  split, change = {"shuffled-labels": (features.TRAIN_SPLIT, _shuffle_labels),
                   "drifted-genres": (features.TRAIN_SPLIT, _drift_genres),
                   "corrupt-eval": (features.EVAL_SPLIT, _corrupt_eval)}[injection.kind]
  files = sorted((span_dir / split).glob("*.tfrecord.gz"))
  if not files:
    raise InjectionError(f"--inject {injection.span}:{injection.kind}: no examples in {span_dir / split}")
  (Path(examples_dir) / prepare.MANIFEST).unlink(missing_ok=True)
  rng = np.random.default_rng(_SEED + injection.span)
  for path in files:
    examples = [tf.train.Example.FromString(record.numpy())
                for record in tf.data.TFRecordDataset(str(path), compression_type="GZIP")]
    change(examples, rng)
    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
      for example in examples:
        writer.write(example.SerializeToString())
  return files


def _shuffle_labels(examples: List[tf.train.Example], rng: np.random.Generator) -> None:
  rated = [e for e in examples if e.features.feature[features.INTERACTION].int64_list.value[0] == 1]
  labels = [(e.features.feature[features.LIKED].int64_list.value[0],
             e.features.feature[features.RATING].float_list.value[0]) for e in rated]
  for example, index in zip(rated, rng.permutation(len(rated))):
    liked, rating = labels[index]
    example.features.feature[features.LIKED].int64_list.value[:] = [liked]
    example.features.feature[features.RATING].float_list.value[:] = [rating]


def _drift_genres(examples: List[tf.train.Example], rng: np.random.Generator) -> None:
  for index in np.flatnonzero(rng.random(len(examples)) < 0.5):
    examples[index].features.feature[features.GENRES].bytes_list.value[:] = [DRIFT_GENRE]


def _corrupt_eval(examples: List[tf.train.Example], rng: np.random.Generator) -> None:
  for index, example in enumerate(examples):
    if example.features.feature[features.INTERACTION].int64_list.value[0] == 1:
      example.features.feature[features.RATING].float_list.value[:] = [CORRUPT_RATING]
    if index % 10 == 0:
      del example.features.feature[features.MOVIE_ID]
