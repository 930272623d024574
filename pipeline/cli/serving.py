"""`recsys serve|predict|recommend|status|metadata|loadtest`.

`serve` takes tensorflow_model_server's flags as TF Serving spells them (`--model_base_path`); the client
commands spell their flags like every other recsys command (`--model-name`). The client commands import no
TensorFlow (serving.client's generated protos); the server is imported inside `serve` so that `recsys --help`
stays fast.
"""
import argparse
import json
import logging
import sys
from pathlib import Path

from components import signatures
from pipeline.config import PipelineConfig
from serving import flags


def register(subparsers: argparse._SubParsersAction) -> None:
  """Adds the serving commands."""
  serve = subparsers.add_parser(
      "serve", help="Start a TF-Serving-compatible model server (tensorflow_model_server's flags).")
  flags.add_server_flags(serve)
  flags.add_launcher_flags(serve)
  serve.set_defaults(handler=_serve)

  predict = subparsers.add_parser("predict", help="Score one user against movies (signature 'predict').")
  _add_client_flags(predict)
  predict.add_argument("--user", required=True, help="User id.")
  predict.add_argument("--movies", required=True, help="Comma-separated movie ids.")
  predict.add_argument("--titles", default=None, help="movies.csv (movieId,title,genres) to show titles.")
  predict.set_defaults(handler=_predict)

  recommend = subparsers.add_parser("recommend", help="Top movies for one user (signature 'recommend').")
  _add_client_flags(recommend)
  recommend.add_argument("--user", required=True, help="User id.")
  recommend.add_argument("-k", type=int, default=None, help="How many (at most the K the model exports).")
  recommend.add_argument("--titles", default=None, help="movies.csv (movieId,title,genres) to show titles.")
  recommend.set_defaults(handler=_recommend)

  status = subparsers.add_parser("status", help="Versions of the model and their state (GetModelStatus).")
  _add_client_flags(status)
  status.set_defaults(handler=_status)

  metadata = subparsers.add_parser("metadata", help="Signatures of the model (GetModelMetadata).")
  _add_client_flags(metadata)
  metadata.set_defaults(handler=_metadata)

  loadtest = subparsers.add_parser("loadtest", help="Load-test the server: latency percentiles, QPS, errors.")
  _add_client_flags(loadtest)
  loadtest.add_argument("--mode", choices=(signatures.PREDICT, signatures.RECOMMEND, "mixed"),
                        default=signatures.PREDICT, help="The signature to call; mixed: either, half and half.")
  loadtest.add_argument("--concurrency", type=int, default=8, help="Callers (closed loop) / in-flight cap.")
  loadtest.add_argument("--duration", type=float, default=10.0,
                        help="Seconds (inf: until SIGTERM or Ctrl-C, which end the run with its result).")
  loadtest.add_argument("--rate", type=float, default=None, help="Requests per second (open loop).")
  loadtest.add_argument("--think", type=float, default=0.0,
                        help="Closed loop: seconds each caller waits between an answer and its next request.")
  loadtest.add_argument("--movies-per-request", type=int, default=1, help="Predict rows per request.")
  loadtest.add_argument("--ids", type=Path, default=None,
                        help='JSON {"users": [...], "movies": [...]} of the ids to send (default: MovieLens '
                             "100K's).")
  loadtest.add_argument("--trace", type=Path, default=None,
                        help="Also write one CSV row per request (send time, signature, status, version, ms).")
  loadtest.add_argument("--json", action="store_true", help="Print the result as JSON.")
  loadtest.set_defaults(handler=_loadtest)


def _add_client_flags(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--target", default=flags.DEFAULT_TARGET, help="gRPC host:port of the model server.")
  parser.add_argument("--model-name", default=PipelineConfig.model_name, help="Served model name.")
  parser.add_argument("--model-version", type=int, default=None, help="Pin a version (default: latest).")
  parser.add_argument("--version-label", default="", help="Pin a version label such as stable or canary.")
  parser.add_argument("--timeout", type=float, default=10.0, help="Deadline of each call in seconds.")


def _serve(args: argparse.Namespace) -> int:
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
  from serving import launcher  # pylint: disable=import-outside-toplevel  (the server's protos: `serve` only)
  return launcher.serve(args)  # its config errors become `error:` lines in pipeline/cli/__init__.py


def _client(args: argparse.Namespace):
  from pipeline.recommender.client import RecommenderClient  # pylint: disable=import-outside-toplevel
  return RecommenderClient(args.target, args.model_name, args.timeout, args.model_version, args.version_label)


def _run_client_command(args: argparse.Namespace, body) -> int:
  """Runs `body(client)`; an RPC error becomes one line naming the model and target, and exit status 1."""
  import grpc  # pylint: disable=import-outside-toplevel
  try:
    with _client(args) as client:
      body(client)
  except grpc.RpcError as e:
    print(f"error: {args.model_name} at {args.target}: {e.code().name}: {e.details()}", file=sys.stderr)
    return 1
  except ValueError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return 0


def _titles(path):
  from pipeline.recommender.client import read_titles  # pylint: disable=import-outside-toplevel
  return read_titles(path) if path else {}


def _note_unknown_user(client, user: str) -> None:
  if client.is_out_of_vocabulary(user):
    print(f"note: user {user!r} was not in the model's training vocabulary; these are the model's answers for "
          "an unknown (cold-start) user")


def _predict(args: argparse.Namespace) -> int:
  movies = [m.strip() for m in args.movies.split(",") if m.strip()]
  if not movies:
    print("error: --movies needs at least one movie id", file=sys.stderr)
    return 2
  titles = _titles(args.titles)

  def body(client):
    predictions = client.predict(args.user, movies)
    print(f"user {args.user}  ({args.model_name} at {args.target})")
    print(f"{'movie':>8}  {'score':>7}  {'P(inter.)':>9}  {'P(liked)':>8}  title")
    for p in predictions:
      print(f"{p.movie_id:>8}  {p.score:7.4f}  {p.interaction:9.4f}  {p.liked:8.4f}  {titles.get(p.movie_id, '')}")
    _note_unknown_user(client, args.user)

  return _run_client_command(args, body)


def _recommend(args: argparse.Namespace) -> int:
  titles = _titles(args.titles)

  def body(client):
    recommendations = client.recommend(args.user, args.k)
    print(f"top {len(recommendations)} for user {args.user}  ({args.model_name} at {args.target})")
    for rank, r in enumerate(recommendations, 1):
      print(f"{rank:>3}. {r.movie_id:>8}  {r.score:7.4f}  {titles.get(r.movie_id, '')}")
    _note_unknown_user(client, args.user)

  return _run_client_command(args, body)


def _status(args: argparse.Namespace) -> int:
  def body(client):
    from serving.client_protos.tensorflow_serving.apis import get_model_status_pb2  # noqa: E501
    state_name = get_model_status_pb2.ModelVersionStatus.State.Name
    for status in client.status().model_version_status:
      error = f"  {status.status.error_message}" if status.status.error_code else ""
      print(f"{args.model_name} version {status.version}: {state_name(status.state)}{error}")

  return _run_client_command(args, body)


def _metadata(args: argparse.Namespace) -> int:
  def body(client):
    from serving import tensor_codec  # pylint: disable=import-outside-toplevel
    from serving.client_protos.tensorflow_serving.apis import get_model_metadata_pb2  # noqa: E501
    response = client.metadata()
    signature_defs = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signature_defs)
    print(f"{response.model_spec.name} version {response.model_spec.version.value}")

    def describe(tensors):
      return ", ".join(
          f"{key} {tensor_codec.dtype_name(t.dtype)[3:].lower()}"
          f"{'[?]' if t.tensor_shape.unknown_rank else [d.size if d.size >= 0 else None for d in t.tensor_shape.dim]}"
          for key, t in sorted(tensors.items()))

    for key, signature in sorted(signature_defs.signature_def.items()):
      print(f"  {key}: ({describe(signature.inputs)}) -> ({describe(signature.outputs)})  {signature.method_name}")

  return _run_client_command(args, body)


def _loadtest(args: argparse.Namespace) -> int:
  import dataclasses  # pylint: disable=import-outside-toplevel
  from pipeline.recommender import loadtest  # pylint: disable=import-outside-toplevel
  ids = {}
  if args.ids:
    try:
      ids["users"], ids["movies"] = loadtest.read_ids(args.ids)
    except ValueError as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
  result = loadtest.run_loadtest(args.target, args.mode, args.concurrency, args.duration, args.rate,
                                 args.model_name, movies_per_request=args.movies_per_request, timeout_s=args.timeout,
                                 model_version=args.model_version, version_label=args.version_label,
                                 trace_path=args.trace, think_s=args.think, **ids)
  print(json.dumps(dataclasses.asdict(result), indent=2) if args.json else result.table())
  return 0 if not result.errors else 1
