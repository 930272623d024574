"""One typed configuration object that flows from the CLI to the data layer, the pipeline and the server."""
import dataclasses
from pathlib import Path
from typing import Literal, Optional, Tuple

from components.hparams import ModelConfig, TrainConfig

SyntheticLike = Literal["ml-100k", "ml-latest-small"]  # pipeline/data/synthetic_calibration.py's CALIBRATIONS
DatasetName = Literal["synthetic", "ml-100k", "ml-1m", "ml-latest-small", "ml-25m", "ml-latest"]
SplitMode = Literal["temporal", "global_temporal", "random"]
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
    split: "temporal" holds out each user's most recent ratings; "global_temporal" every rating after one cut time
      for everyone (no train rating is later than any eval rating; eval users without train ratings stay in eval
      as cold users, see pipeline/data/split.py); "random" a seeded random fraction.
    eval_fraction: share of each user's ratings (temporal) or of all ratings (global_temporal, random) that go
      to eval.
    eval_negatives: sampled unrated movies per eval user, written once so every model sees the same ones: the
      ranking metrics rank each user's held-out liked movie against all of them (the NCF protocol).
    evaluator_negatives: how many of those go to the `eval` split that the Evaluator (TFMA) judges; the rest go
      to the `ranking` split, read by the ranking metrics only. The interaction AUC compares rated with sampled
      unrated movies, and a uniform subset of the negatives leaves its expected value unchanged
      (BENCHMARKS.md, "Scale"), while TFMA's cost falls with the rows it reads.
    seed: seeds the split, the eval negatives and the synthetic generator.
    on_bad_rows: "fail" stops at the first bad row naming file and line; "skip" skips and reports them.
    synthetic_users / synthetic_movies / synthetic_ratings: shape of the synthetic set.
    synthetic_like: the release whose statistics the synthetic set imitates (ratings, genres, activity, time).
    span_by: None (one train/eval split), or cut the ratings by timestamp into numbered spans: "week", "month",
      "year" or "N-days" (pipeline/data/spans.py); span N's train is period N, its eval period N + 1, and
      `split` and `eval_fraction` do not apply.
    span_window: how many of the latest spans (up to the one ExampleGen reads) Transform and the Trainer see; the
      window is also the history that decides the sampled movies, user activity and cold users of an eval.
    examples_per_file: the most tf.Examples in one written file (a split's files are filled evenly). Beam reads
      a GZIP file with one worker, so a split in several files is what lets multi-process and cluster runners
      read it in parallel.
  """
  dataset: DatasetName = "synthetic"
  data_dir: Optional[Path] = None
  cache_dir: Path = Path.home() / ".cache" / "recsys"
  split: SplitMode = "temporal"
  eval_fraction: float = 0.1
  eval_negatives: int = 99
  evaluator_negatives: int = 9
  seed: int = 42
  on_bad_rows: BadRowPolicy = "fail"
  synthetic_users: int = 943
  synthetic_movies: int = 1682
  synthetic_ratings: int = 100_000
  synthetic_like: SyntheticLike = "ml-100k"
  span_by: Optional[str] = None
  span_window: int = 3
  examples_per_file: int = 50_000


@dataclasses.dataclass(frozen=True)
class DriftConfig:
  """The drift check of spans (pipeline/drift_gate.py): each span's train statistics against the previous span's,
  with TFDV's drift comparators on the imported schema; a distance above its threshold stops the run before
  Transform. It runs only with DataConfig.span_by.

  Attributes:
    enabled: False leaves the check out.
    movie_id_linf / genres_linf: thresholds of the L-infinity distance between the value shares of the two spans
      (the largest change of one value's share).
    rating_jsd: threshold of the Jensen-Shannon divergence between the rating histograms.
  """
  enabled: bool = True
  movie_id_linf: float = 0.05
  genres_linf: float = 0.1
  rating_jsd: float = 0.1


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  """Blessing, on the overall slice: AUC lower bounds, a ranking gate (NDCG@`ndcg_k` of the `score` output over
  each eval user's examples, gains from `liked`: pipeline/pipeline.py), and no regression of either against the
  last blessed model."""
  min_liked_auc: float = 0.6
  min_interaction_auc: float = 0.7
  max_auc_regression: float = 0.01
  ndcg_k: int = 10
  min_ndcg: float = 0.6
  max_ndcg_regression: float = 0.01
  # The baseline is the latest blessed model other than the candidate, so that an identical re-run is fully
  # cached (components/baseline.py). False uses TFX's LatestBlessedModelStrategy, the only one besides
  # LatestArtifactStrategy that the Kubeflow V2 compiler accepts.
  baseline_excludes_candidate: bool = True


ModelServerChoice = Literal["auto", "tfs", "embedded"]


@dataclasses.dataclass(frozen=True)
class InfraValidationConfig:
  """Infra validation between the Evaluator and the Pusher (pipeline/infra_validation.py): the candidate is
  served by a model server in a subprocess and must answer like the SavedModel itself before it is pushed.

  Attributes:
    enabled: False leaves the InfraValidator out of the pipeline; the Pusher then checks the blessing alone.
    server: `recsys serve --server`: "auto" (tensorflow_model_server when on PATH, else the embedded server),
      "tfs" or "embedded".
    num_examples: eval examples each signature's request is built from.
    load_timeout_s: how long the server may take to start and make the model AVAILABLE (TFX's InfraValidator
      waits 300 s by default).
    request_timeout_s: deadline of each request.
    tolerance: absolute and relative tolerance when float answers are compared with the in-process
      SavedModel's; every other dtype must be equal.
  """
  enabled: bool = True
  server: ModelServerChoice = "auto"
  num_examples: int = 8
  load_timeout_s: float = 300.0
  request_timeout_s: float = 30.0
  tolerance: float = 1e-5


@dataclasses.dataclass(frozen=True)
class ReportConfig:
  """What `recsys report` and the run summary judge: the HR@K / NDCG@K cut-off and the smallest slice judged."""
  k: int = 10
  min_slice_examples: float = 30.0  # slices with fewer weighted examples are too small to judge


BeamMode = Literal["auto", "in_memory", "multi_threading", "multi_processing", "portable"]


@dataclasses.dataclass(frozen=True)
class BeamConfig:
  """Where the Beam work of ExampleGen, StatisticsGen, Transform and Evaluator runs (see pipeline/runners/beam.py).

  Attributes:
    mode: "auto" (the DirectRunner mode that suits the input's size, pipeline/runners/beam.py), a DirectRunner
      running mode, or "portable": a job submitted to `job_endpoint` (Flink, Spark or Beam's
      local job service) over Beam's portable API.
    workers: DirectRunner worker count (--direct_num_workers); in portable mode the job server decides.
    job_endpoint: HOST:PORT of the job server; portable mode only.
    worker_pool: HOST:PORT of an external SDK worker pool (EXTERNAL environment); None: the job server's default
      environment. Portable mode only.
    job_timeout_s: Beam's --job_server_timeout. Beam 2.60 also makes it the deadline of the job's state stream,
      so it bounds how long one Beam step may run (its default, 60 s, fails any longer step with
      DEADLINE_EXCEEDED); an unreachable job server is waited for as long. Portable mode only.
    extra_args: passed through after the above (Dataflow, Flink or Spark runner options).
  """
  mode: BeamMode = "auto"
  workers: int = 1
  job_endpoint: Optional[str] = None
  worker_pool: Optional[str] = None
  job_timeout_s: int = 6 * 3600
  extra_args: Tuple[str, ...] = ()


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
  span: Optional[int] = None  # with data.span_by: the span ExampleGen reads; None: the latest one
  # Beam's default (DirectRunner in_memory), as pipeline/runners/beam.py spells it: no arguments, which also keeps
  # TFX from building an sdist of itself for remote workers in every Beam component (1.5 s each).
  beam_args: Tuple[str, ...] = ()
  data: DataConfig = DataConfig()
  model: ModelConfig = ModelConfig()
  train: TrainConfig = TrainConfig()
  eval: EvalConfig = EvalConfig()
  drift: DriftConfig = DriftConfig()
  infra_validation: InfraValidationConfig = InfraValidationConfig()


InjectionKind = Literal["shuffled-labels", "drifted-genres", "corrupt-eval"]


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
  """`recsys replay` (pipeline/replay/): the pipeline run span after span while a model server serves the pushed
  versions and a load generator calls it.

  Attributes:
    first_span / spans: replay spans first_span .. first_span + spans - 1 (spans None: to the last one).
    callers: closed-loop callers of the load generator (each sends `think_s` after its previous answer
      arrived), half of the requests `predict` (one user x `movies_per_request` movies), half `recommend`.
    think_s: the callers' think time. Without it two callers alone keep a core of a 2-core machine busy
      (client and server), which the pipeline then lacks; with 0.05 s they send about 35 requests a second.
    movies_per_request: rows of each `predict` request.
    request_timeout_s: deadline of each request; a request past it counts as failed.
    swap_window_s: the latency around a version swap is taken over the requests sent this long before and after
      the first answer of the new version; the rest is steady state.
    server: the model server (`recsys serve --server`).
    inject: "SPAN:KIND" bad data put into a span before it runs (pipeline/replay/inject.py), KIND one of
      InjectionKind: the loop's defences must keep it from being pushed.
  """
  first_span: int = 1
  spans: Optional[int] = None
  callers: int = 2
  think_s: float = 0.05
  movies_per_request: int = 10
  request_timeout_s: float = 10.0
  swap_window_s: float = 10.0
  server: ModelServerChoice = "auto"
  inject: Tuple[str, ...] = ()
