"""One typed configuration object that flows from the CLI to the data layer, the pipeline and the server."""
import dataclasses
from pathlib import Path
from typing import Literal, Optional, Tuple

from components.hparams import ModelConfig, TrainConfig

DatasetName = Literal["synthetic", "ml-100k", "ml-1m", "ml-latest-small", "ml-25m", "ml-latest"]
SplitMode = Literal["temporal", "random"]
BadRowPolicy = Literal["fail", "skip"]
# The curated schema of the prepared examples, imported with ImportSchemaGen (see schema/schema.pbtxt).
CURATED_SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schema"


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where the ratings come from and how they become train/eval examples.

  Attributes:
    dataset: a MovieLens release name, or "synthetic" for the seeded generator (the embedded default).
    data_dir: a copy already on disk; when None the release is downloaded into `cache_dir`.
    cache_dir: where downloads and synthetic data are kept.
    split: "temporal" holds out each user's most recent ratings; "random" a seeded random fraction.
    eval_fraction: share of each user's ratings (temporal) or of all ratings (random) that go to eval.
    eval_negatives: sampled unrated movies per eval user, written once so every model sees the same ones.
    seed: seeds the split, the eval negatives and the synthetic generator.
    on_bad_rows: "fail" stops at the first bad row naming file and line; "skip" skips and reports them.
    synthetic_users / synthetic_movies / synthetic_ratings: shape of the synthetic set.
  """
  dataset: DatasetName = "synthetic"
  data_dir: Optional[Path] = None
  cache_dir: Path = Path.home() / ".cache" / "recsys"
  split: SplitMode = "temporal"
  eval_fraction: float = 0.1
  eval_negatives: int = 99
  seed: int = 42
  on_bad_rows: BadRowPolicy = "fail"
  synthetic_users: int = 943
  synthetic_movies: int = 1682
  synthetic_ratings: int = 100_000


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """Blessing: AUC lower bounds on the overall slice and no regression against the last blessed model."""
  min_liked_auc: float = 0.6
  min_interaction_auc: float = 0.7
  max_auc_regression: float = 0.01
  # The baseline is the latest blessed model other than the candidate, so that an identical re-run is fully
  # cached (components/baseline.py). False uses TFX's LatestBlessedModelStrategy, the only one besides
  # LatestArtifactStrategy that the Kubeflow V2 compiler accepts.
  baseline_excludes_candidate: bool = True


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Everything a pipeline run needs; built once by the CLI and passed down."""
  pipeline_name: str = "movielens-ncf"
  pipeline_root: Path = Path("out/pipeline")
  examples_dir: Path = Path("out/examples")  # prepared train/ and eval/ tf.Examples that ExampleGen imports
  metadata_path: Optional[Path] = None  # SQLite ML Metadata; defaults to <pipeline_root>/metadata.sqlite
  serving_dir: Path = Path("out/serving")
  model_name: str = "ncf"
  schema_dir: Optional[Path] = None  # curated schema to import; None infers one with SchemaGen
  beam_args: Tuple[str, ...] = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
  data: DataConfig = DataConfig()
  model: ModelConfig = ModelConfig()
  train: TrainConfig = TrainConfig()
  eval: EvalConfig = EvalConfig()
