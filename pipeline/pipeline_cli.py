"""`recsys pipeline run|compile`: builds a PipelineConfig from flags and runs or compiles the pipeline."""
import argparse
import dataclasses
import json
import sys
from pathlib import Path

from pipeline import data_cli
from components.hparams import ModelConfig, TrainConfig
from pipeline.config import CURATED_SCHEMA_DIR, EvalConfig, PipelineConfig

BEAM_RUNNING_MODES = ("in_memory", "multi_threading", "multi_processing")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
  """Flags that build a PipelineConfig; shared by `pipeline run` and `pipeline compile`."""
  data_cli.add_data_flags(parser)
  defaults = PipelineConfig()
  paths = parser.add_argument_group("paths")
  paths.add_argument("--pipeline-name", default=defaults.pipeline_name)
  paths.add_argument("--pipeline-root", type=Path, default=defaults.pipeline_root,
                     help="Artifacts and ML Metadata (default %(default)s).")
  paths.add_argument("--metadata-path", type=Path, help="SQLite ML Metadata file (default <pipeline-root>/"
                                                        "metadata.sqlite).")
  paths.add_argument("--examples-dir", type=Path,
                     help="Where the prepared train/eval tf.Examples are written (default out/examples/<dataset>).")
  paths.add_argument("--serving-dir", type=Path, default=defaults.serving_dir,
                     help="Pusher writes <serving-dir>/<model-name>/<version>/ (default %(default)s).")
  paths.add_argument("--model-name", default=defaults.model_name)
  paths.add_argument("--schema-dir", type=Path, default=CURATED_SCHEMA_DIR,
                     help="Curated schema.pbtxt imported with ImportSchemaGen (default %(default)s).")
  paths.add_argument("--infer-schema", action="store_true",
                     help="Infer the schema with SchemaGen instead of importing the curated one (first use of "
                          "a new data source).")

  model, train, evaluation = ModelConfig(), TrainConfig(), EvalConfig()
  hparams = parser.add_argument_group("model and training")
  hparams.add_argument("--epochs", type=int, default=train.epochs)
  hparams.add_argument("--batch-size", type=int, default=train.batch_size)
  hparams.add_argument("--learning-rate", type=float, default=train.learning_rate)
  hparams.add_argument("--negatives", type=int, default=train.negatives_per_positive,
                       help="Sampled unrated movies per rated pair, redrawn every epoch.")
  hparams.add_argument("--negative-sampler", choices=("uniform", "popularity"), default=train.negative_sampler)
  hparams.add_argument("--interaction-loss-weight", type=float, default=train.interaction_loss_weight)
  hparams.add_argument("--liked-loss-weight", type=float, default=train.liked_loss_weight)
  hparams.add_argument("--liked-blend", type=float, default=train.liked_blend,
                       help="Ranking score = P(interaction) * P(liked) ** blend.")
  hparams.add_argument("--id-dropout", type=float, default=train.id_dropout)
  hparams.add_argument("--recommend-k", type=int, default=train.recommend_k)
  hparams.add_argument("--gmf-dim", type=int, default=model.gmf_embedding_dim)
  hparams.add_argument("--mlp-dim", type=int, default=model.mlp_embedding_dim)
  hparams.add_argument("--mlp-layers", type=lambda text: tuple(int(v) for v in text.split(",")),
                       default=model.mlp_layers, help="Comma-separated units, e.g. 64,32,16.")
  hparams.add_argument("--l2", type=float, default=model.l2)

  blessing = parser.add_argument_group("blessing")
  blessing.add_argument("--min-liked-auc", type=float, default=evaluation.min_liked_auc)
  blessing.add_argument("--min-interaction-auc", type=float, default=evaluation.min_interaction_auc)
  blessing.add_argument("--max-auc-regression", type=float, default=evaluation.max_auc_regression)

  beam = parser.add_argument_group("beam")
  beam.add_argument("--beam-mode", choices=BEAM_RUNNING_MODES, default="in_memory",
                    help="DirectRunner running mode (default %(default)s).")
  beam.add_argument("--beam-workers", type=int, default=1, help="DirectRunner workers (--direct_num_workers).")


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
  """The PipelineConfig named by the flags of add_config_arguments."""
  data = data_cli.data_config(args)
  defaults = PipelineConfig()
  return PipelineConfig(
      pipeline_name=args.pipeline_name,
      pipeline_root=args.pipeline_root,
      examples_dir=args.examples_dir or Path("out/examples") / data.dataset,
      metadata_path=args.metadata_path,
      serving_dir=args.serving_dir,
      model_name=args.model_name,
      schema_dir=None if args.infer_schema else args.schema_dir,
      beam_args=(f"--direct_running_mode={args.beam_mode}", f"--direct_num_workers={args.beam_workers}",
                 *(args.beam_arg or ())),  # --beam-arg: `run` adds it, `compile` (kubeflow_runner) too
      data=data,
      model=dataclasses.replace(defaults.model, gmf_embedding_dim=args.gmf_dim, mlp_embedding_dim=args.mlp_dim,
                                mlp_layers=tuple(args.mlp_layers), l2=args.l2),
      train=dataclasses.replace(
          defaults.train, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
          negatives_per_positive=args.negatives, negative_sampler=args.negative_sampler,
          interaction_loss_weight=args.interaction_loss_weight, liked_loss_weight=args.liked_loss_weight,
          liked_blend=args.liked_blend, id_dropout=args.id_dropout, recommend_k=args.recommend_k),
      eval=EvalConfig(min_liked_auc=args.min_liked_auc, min_interaction_auc=args.min_interaction_auc,
                      max_auc_regression=args.max_auc_regression))


def _run(args: argparse.Namespace) -> int:
  from components.anomalies_gate import ExampleAnomaliesError
  from pipeline import local_runner
  from pipeline import summary
  from pipeline.prepare import prepare_examples

  config = config_from_args(args)
  prepared = prepare_examples(config.data, config.examples_dir)
  try:
    local_runner.run(config)
  except ExampleAnomaliesError as error:
    print(f"recsys pipeline run: {error}", file=sys.stderr)
    return 2
  run_summary = summary.summarize(config)
  print(run_summary.format())
  if args.summary_json:
    args.summary_json.parent.mkdir(parents=True, exist_ok=True)
    args.summary_json.write_text(json.dumps(run_summary.as_dict(), indent=2) + "\n")
  if args.report:
    from pipeline import report
    print(f"report: {report.write_report(config.pipeline_root, config.metadata_path, args.report)}")
  if args.demo and run_summary.pushed_path:
    from serving.demo import run_demo
    run_demo(config.serving_dir, config.model_name, prepared.movies_csv, args.demo_user)
  return 0


def register(subparsers: argparse._SubParsersAction) -> None:
  """Adds the `pipeline` command group: `run` (LocalDagRunner) and `compile` (Kubeflow Pipelines spec)."""
  from pipeline import kubeflow_runner

  parser = subparsers.add_parser("pipeline", help="Run or compile the TFX pipeline.")
  commands = parser.add_subparsers(dest="pipeline_command", required=True, metavar="COMMAND")
  run = commands.add_parser("run", help="Prepare the data and run the pipeline here (LocalDagRunner, SQLite "
                                        "ML Metadata).")
  add_config_arguments(run)
  run.add_argument("--beam-arg", action="append", metavar="ARG",
                   help="Extra Beam argument passed through (Dataflow/Flink/Spark runner options), e.g. "
                        "--beam-arg=--runner=FlinkRunner; repeatable.")
  run.add_argument("--summary-json", type=Path, help="Also write the end-of-run summary to this JSON file.")
  run.add_argument("--report", type=Path, metavar="HTML",
                   help="Also write the evaluation report of this run (HTML, PNGs beside it).")
  run.add_argument("--demo", action="store_true",
                   help="After a push, serve the model and print recommendations for --demo-user.")
  run.add_argument("--demo-user", default="1", help="User id for --demo (default %(default)s).")
  run.set_defaults(handler=_run)
  kubeflow_runner.register_compile(commands, add_config_arguments, config_from_args)
