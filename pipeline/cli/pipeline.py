"""`recsys pipeline run|compile`: builds a PipelineConfig from flags and runs or compiles the pipeline."""
import argparse
import functools
import json
from pathlib import Path

from pipeline.cli import data as data_cli
from pipeline.cli import flags
from pipeline.cli.flags import Flag
from components.hparams import ModelConfig, TrainConfig
from pipeline.config import (CURATED_SCHEMA_DIR, BeamConfig, DriftConfig, EvalConfig, InfraValidationConfig,
                             PipelineConfig)
from pipeline.runners import beam


PATH_FLAGS = (
    "pipeline_name",
    Flag("pipeline_root", help="Artifacts and ML Metadata."),
    Flag("metadata_path", help="SQLite ML Metadata file (None: <pipeline-root>/metadata.sqlite)."),
    Flag("examples_dir", help="Where the prepared train/eval tf.Examples are written (None: out/examples/<dataset>)."),
    Flag("serving_dir", help="Pusher writes <serving-dir>/<model-name>/<version>/."),
    "model_name",
)
MODEL_FLAGS = (Flag("gmf_embedding_dim", "gmf-dim"), Flag("mlp_embedding_dim", "mlp-dim"),
               Flag("mlp_layers", help="Comma-separated units, e.g. 64,32,16."), "l2",
               Flag("liked_tower", help="shared: the liked head reads the GMF and MLP towers only; mf: it adds a "
                    "biased matrix factorisation of the rating on embeddings of its own; rating: liked is that "
                    "factorisation alone, calibrated, and a liked head on the towers (not served) trains them."),
               Flag("liked_embedding_dim", "liked-dim"), "liked_l2",
               Flag("rating_row_l2", help="ALS-style L2 of the rating factorisation: lambda per row, on the rows "
                    "rated pairs look up (0: off)."))
TRAIN_FLAGS = (
    "epochs", "batch_size", "learning_rate",
    Flag("optimizer", help="adam: Keras' Adam, every embedding row updated every step; lazy_adam: a lookup's "
                           "gradient updates the looked-up rows only (a step's cost stops growing with the tables)."),
    Flag("negatives_per_positive", "negatives", "Sampled unrated movies per rated pair, redrawn every epoch."),
    "negative_sampler", "interaction_loss_weight", "liked_loss_weight",
    Flag("liked_blend", help="Ranking score = P(interaction) * P(liked) ** blend."),
    "id_dropout", "recommend_k", "recommend_candidates",
    Flag("recommend_precompute", "no-recommend-precompute",
         "`recommend` ranks per request instead of reading each user's list ranked once at export."),
    Flag("warm_start", help="Start the Trainer from the latest blessed model (ids both vocabularies know keep "
                            "their rows); the first run trains cold."),
    Flag("warm_start_epochs", help="Epochs of a warm-started Trainer (None: --epochs)."),
)
EVAL_FLAGS = ("min_liked_auc", "min_interaction_auc", "max_auc_regression", "ndcg_k", "min_ndcg", "max_ndcg_regression")
INFRA_FLAGS = (
    Flag("enabled", "no-infra-validation", "Push without serving the candidate in a model server first."),
    Flag("server", "infra-server", "Model server of the infra validation; auto: tensorflow_model_server when "
                                   "on PATH, else the embedded server."),
    Flag("num_examples", "infra-examples", "Eval examples in each signature's infra-validation request."),
    Flag("load_timeout_s", "infra-load-timeout", "Seconds the server may take to make the model AVAILABLE."),
    Flag("request_timeout_s", "infra-request-timeout", "Deadline of each infra-validation request, seconds."),
    Flag("tolerance", "infra-tolerance", "Float answers may differ from the in-process SavedModel's by this "
                                         "much (absolute and relative)."),
)
SPAN_FLAGS = (Flag("span", help="With --span-by: the span ExampleGen reads (None: the latest)."),)
DRIFT_FLAGS = (
    Flag("enabled", "no-drift-check", "With --span-by: do not compare each span's statistics with the previous "
                                      "span's."),
    Flag("movie_id_linf", help="Drift threshold: L-infinity distance of movie_id's value shares between spans."),
    Flag("genres_linf", help="Drift threshold: L-infinity distance of the genres' value shares between spans."),
    Flag("rating_jsd", help="Drift threshold: Jensen-Shannon divergence of the rating histograms between spans."),
)
BEAM_FLAGS = (
    Flag("mode", "beam-mode", "`auto`: in_memory below 500,000 ratings, multi_processing with one worker per "
                              "CPU above; a DirectRunner running mode; or `portable`: submit to --job-endpoint."),
    Flag("workers", "beam-workers", "DirectRunner workers (--direct_num_workers)."),
    Flag("job_endpoint", help="HOST:PORT of a Beam job server (Flink, Spark, `recsys beam local-cluster`); "
                              "--beam-mode portable."),
    Flag("worker_pool", help="HOST:PORT of an external SDK worker pool (--environment_type=EXTERNAL); "
                             "None: the job server's default environment. --beam-mode portable."),
    Flag("job_timeout_s", "job-timeout", "Seconds one Beam step may run on the job server (Beam's "
                                         "--job_server_timeout). --beam-mode portable."),
)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
  """Flags that build a PipelineConfig; shared by `pipeline run` and `pipeline compile`."""
  data_cli.add_data_flags(parser)
  paths = parser.add_argument_group("paths")
  flags.add_flags(paths, PipelineConfig, PATH_FLAGS, "pipeline_")
  paths.add_argument("--schema-dir", type=Path, default=CURATED_SCHEMA_DIR,
                     help="Curated schema.pbtxt imported with ImportSchemaGen (default %(default)s).")
  paths.add_argument("--infer-schema", action="store_true",
                     help="Infer the schema with SchemaGen instead of importing the curated one (first use of "
                          "a new data source).")
  flags.add_flags(parser.add_argument_group("model"), ModelConfig, MODEL_FLAGS, "model_")
  flags.add_flags(parser.add_argument_group("training"), TrainConfig, TRAIN_FLAGS, "train_")
  flags.add_flags(parser.add_argument_group("blessing"), EvalConfig, EVAL_FLAGS, "eval_")
  spans = parser.add_argument_group("spans")
  flags.add_flags(spans, PipelineConfig, SPAN_FLAGS, "pipeline_")
  flags.add_flags(spans, DriftConfig, DRIFT_FLAGS, "drift_")
  flags.add_flags(parser.add_argument_group("infra validation"), InfraValidationConfig, INFRA_FLAGS, "infra_")
  beam_flags = parser.add_argument_group("beam")
  flags.add_flags(beam_flags, BeamConfig, BEAM_FLAGS, "beam_")
  beam_flags.add_argument("--beam-arg", action="append", metavar="ARG",
                          help="A Beam argument passed through to every Beam-based step (Dataflow/Flink/Spark "
                               "runner options), e.g. --beam-arg=--runner=DataflowRunner "
                               "--beam-arg=--region=us-central1; repeatable.")


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
  """The PipelineConfig named by the flags of add_config_arguments."""
  from pipeline.data import size  # reads the data with pandas: not imported by commands that need no config

  data = data_cli.data_config(args)
  return flags.from_flags(
      PipelineConfig, args, PATH_FLAGS + SPAN_FLAGS, "pipeline_",
      examples_dir=args.pipeline_examples_dir or Path("out/examples") / data.dataset,
      schema_dir=None if args.infer_schema else args.schema_dir,
      beam_args=beam.beam_args(flags.from_flags(BeamConfig, args, BEAM_FLAGS, "beam_",
                                                extra_args=tuple(args.beam_arg or ())),
                               ratings=size.expected_ratings(data)),
      data=data,
      model=flags.from_flags(ModelConfig, args, MODEL_FLAGS, "model_"),
      train=flags.from_flags(TrainConfig, args, TRAIN_FLAGS, "train_"),
      eval=flags.from_flags(EvalConfig, args, EVAL_FLAGS, "eval_"),
      drift=flags.from_flags(DriftConfig, args, DRIFT_FLAGS, "drift_"),
      infra_validation=flags.from_flags(InfraValidationConfig, args, INFRA_FLAGS, "infra_"))


def _run(args: argparse.Namespace) -> int:
  from pipeline.console import RunConsole
  from pipeline.runners import local as local_runner
  from pipeline.runs import summary

  config = config_from_args(args)
  with RunConsole(config.pipeline_root / "logs", functools.partial(summary.describe_node, config), args.verbose):
    from pipeline.data.prepare import prepare_examples  # imports TensorFlow: its start-up logs go to the log
    prepared = prepare_examples(config.data, config.examples_dir)
    if prepared.skipped_summary:
      print(prepared.skipped_summary)
    if prepared.cold_summary:
      print(prepared.cold_summary)
    print(f"examples: {', '.join(f'{split} {rows:,}' for split, rows in prepared.rows.items())} "
          f"({prepared.users:,} users, {prepared.movies:,} movies) in {prepared.examples_dir}")
    if prepared.spans:
      print(prepared.span_summary(config.span, config.data.span_window))
    local_runner.run(config)
    run_summary = summary.summarize(config)
    print(run_summary.format())
    if args.summary_json:
      args.summary_json.parent.mkdir(parents=True, exist_ok=True)
      args.summary_json.write_text(json.dumps(run_summary.as_dict(), indent=2) + "\n")
    # Still inside the console: what TensorFlow logs while the report and the demo run goes to the log file too.
    if args.report:
      from pipeline.report import html as report
      print(f"report: {report.write_report(config.pipeline_root, config.metadata_path, args.report)}")
    if args.demo and run_summary.pushed_path:
      from pipeline.recommender.demo import run_demo
      run_demo(config.serving_dir, config.model_name, prepared.movies_csv, args.demo_user)
  if args.require_blessed and not run_summary.blessed:
    raise summary.NotBlessedError(
        f"the Evaluator did not bless the model of run {run_summary.run_id} (see the AUCs above); nothing was "
        "pushed")
  if args.require_blessed and run_summary.infra_blessed is False:
    raise summary.NotBlessedError(
        f"the model of run {run_summary.run_id} failed infra validation, so nothing was pushed: "
        f"{run_summary.infra_validation}")
  return 0


def register(subparsers: argparse._SubParsersAction) -> None:
  """Adds the `pipeline` command group: `run` (LocalDagRunner) and `compile` (Kubeflow Pipelines spec)."""
  parser = subparsers.add_parser("pipeline", help="Run or compile the TFX pipeline.")
  commands = parser.add_subparsers(dest="pipeline_command", required=True, metavar="COMMAND")
  run = commands.add_parser("run", help="Prepare the data and run the pipeline here (LocalDagRunner, SQLite "
                                        "ML Metadata).")
  add_config_arguments(run)
  run.add_argument("--summary-json", type=Path, help="Also write the end-of-run summary to this JSON file.")
  run.add_argument("--report", type=Path, metavar="HTML",
                   help="Also write the evaluation report of this run (HTML, PNGs beside it).")
  run.add_argument("--demo", action="store_true",
                   help="After a push, serve the model and print recommendations for --demo-user.")
  run.add_argument("--demo-user", default="1", help="User id for --demo (default %(default)s).")
  run.add_argument("--verbose", action="store_true",
                   help="Also show what the libraries print (TensorFlow, TFX, Beam) live; it always goes to "
                        "<pipeline-root>/logs/.")
  run.add_argument("--require-blessed", action="store_true",
                   help="Exit with status 1 when the Evaluator does not bless the model or it fails infra "
                        "validation (for CI).")
  run.set_defaults(handler=_run)
  _add_compile(commands)


def _spec_path(text: str) -> Path:
  """--output: YAML, which KFP and Vertex AI read, or JSON, which only Vertex AI reads."""
  path = Path(text)
  if path.suffix not in (".yaml", ".yml", ".json"):
    raise argparse.ArgumentTypeError(f"{text}: expected a .yaml (Kubeflow Pipelines and Vertex AI) or "
                                     ".json (Vertex AI only) file name")
  return path


def _compile(args: argparse.Namespace) -> int:
  from pipeline.runners import kubeflow as kubeflow_runner

  image = args.image or kubeflow_runner.DEFAULT_IMAGE
  kubeflow_runner.write_spec(kubeflow_runner.compile_pipeline(config_from_args(args), image), args.output)
  print(f"wrote {args.output} (image {image})")
  return 0


def _add_compile(commands: argparse._SubParsersAction) -> None:
  """Adds `recsys pipeline compile`: the same flags as `run`, so both build the same pipeline."""
  parser = commands.add_parser(
      "compile", help="Compile the pipeline into a KFP v2 pipeline spec for Kubeflow Pipelines or Vertex AI.",
      description="Compiles the pipeline `pipeline run` runs. Its paths are chosen per run instead: the "
                  "pipeline root when the run is submitted, the examples and the serving directory as the "
                  "runtime parameters data_root and push_destination; --pipeline-root, --metadata-path, "
                  "--examples-dir and --serving-dir do not reach the spec.")
  add_config_arguments(parser)
  parser.add_argument("--output", type=_spec_path, required=True,
                      help="PipelineSpec file to write, e.g. kubeflow/pipeline.yaml.")
  parser.add_argument("--image", default=None,
                      help="Container image of every step, built from kubeflow/Dockerfile (default "
                           "movielens-ncf-tfx:<the installed version>).")
  parser.set_defaults(handler=_compile)
