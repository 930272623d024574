"""`recsys report`: a static HTML evaluation report of a pipeline run, read through ML Metadata."""
import argparse
from pathlib import Path

from pipeline.config import PipelineConfig, ReportConfig


def register(subparsers: argparse._SubParsersAction) -> None:
  """Adds the `report` command."""
  parser = subparsers.add_parser(
      "report", help="Write an HTML evaluation report of a pipeline run.",
      description="Reads a pipeline run's artifacts through ML Metadata and writes one self-contained HTML file "
                  "(inline CSS and images) with the PNG figures beside it.")
  parser.add_argument("--pipeline-root", type=Path, default=PipelineConfig.pipeline_root,
                      help="The pipeline root of the run (default %(default)s).")
  parser.add_argument("--metadata-path", type=Path,
                      help="SQLite ML Metadata file (default <pipeline-root>/metadata.sqlite).")
  parser.add_argument("--run", default="latest", help="'latest' or a pipeline run id (default %(default)s).")
  parser.add_argument("--out", type=Path, required=True, help="The HTML file to write.")
  parser.add_argument("--k", type=int, default=ReportConfig.k, help="Cut-off of HR@K / NDCG@K (default %(default)s).")
  parser.add_argument("--min-slice-examples", type=float, default=ReportConfig.min_slice_examples,
                      help="Slices with fewer weighted examples are too small to judge (default %(default)s).")
  parser.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
  from pipeline.report import html as report  # pylint: disable=g-import-not-at-top

  run_report = report.load_report(args.pipeline_root, args.metadata_path, args.run, k=args.k,
                                  min_slice_examples=args.min_slice_examples)
  out = report.render_report(run_report, args.out)
  print("\n".join(report.summary_lines(run_report)))
  print(f"wrote {out} (figures beside it as {out.stem}-*.png)")
  return 0
