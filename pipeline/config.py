"""One typed configuration object that flows from the CLI to the data layer, the pipeline and the server."""
import dataclasses
from pathlib import Path
from typing import Literal, Optional, Tuple

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
class ModelConfig:
  """NeuMF shape: GMF and MLP towers over shared id vocabularies, two heads."""
  gmf_embedding_dim: int = 32
  mlp_embedding_dim: int = 32
  mlp_layers: Tuple[int, ...] = (64, 32, 16)
  l2: float = 1e-6
  dropout: float = 0.0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How the Trainer fits the model and what the export holds."""
  epochs: int = 10
  batch_size: int = 1024
  learning_rate: float = 1e-3
  # One redrawn negative per rated pair keeps both heads on target on ml-100k (HR@10 0.65, liked AUC 0.78); 4
  # gives HR@10 0.70 but liked AUC 0.76 (BENCHMARKS.md).
  negatives_per_positive: int = 1
  negative_sampler: Literal["uniform", "popularity"] = "uniform"
  interaction_loss_weight: float = 1.0
  # Keras averages the liked loss over every pair of a batch, sampled ones included (weight 0), so a weight of
  # 1 + negatives_per_positive gives each rated pair the pull it would have alone (BENCHMARKS.md).
  liked_loss_weight: float = 2.0
  liked_blend: float = 1.0  # score = P(interaction) * P(liked) ** liked_blend
  id_dropout: float = 0.02  # share of training ids replaced by OOV so cold-start embeddings learn
  recommend_k: int = 10
  vocab_oov_buckets: int = 1
  seed: int = 7  # seeds weight init, shuffling and negative sampling
  shuffle_labels: bool = False  # tests only: trains a deliberately worse candidate that must not be blessed


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
