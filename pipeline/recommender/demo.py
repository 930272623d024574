"""The end of `make run`: serve the model just pushed, ask it once through the client, print, stop."""
import dataclasses
from pathlib import Path
from typing import Any, Dict

from pipeline.recommender import client as client_lib
from serving.config_files import BATCHING_PARAMETERS_FILE
from serving.flags import ServerOptions

PREDICTED_MOVIES = 3  # predict() shows the heads for the first few recommended movies


def run_demo(serving_dir: Path, model_name: str, movies_csv: Path, user_id: str) -> Dict[str, Any]:
  """Starts the embedded server (batching on, free port) on `serving_dir`/`model_name`, makes one `recommend`
  and one `predict` call through the gRPC client, prints them with titles from `movies_csv`, stops the server.

  Returns {"model_name", "version", "user_id", "unknown_user", "recommend": [{movie_id, title, score}],
  "predict": [{movie_id, title, score, interaction, liked}]}.
  """
  from serving.server import ModelServer  # pylint: disable=import-outside-toplevel  # imports TensorFlow

  titles = client_lib.read_titles(str(movies_csv))
  server = ModelServer(ServerOptions(
      port=0, model_name=model_name, model_base_path=str(Path(serving_dir, model_name).resolve()),
      enable_batching=True, batching_parameters_file=str(BATCHING_PARAMETERS_FILE),
      file_system_poll_wait_seconds=0))
  server.start()
  try:
    with client_lib.RecommenderClient(f"localhost:{server.grpc_port}", model_name) as client:
      version = max(s.version for s in client.status().model_version_status)
      recommendations = client.recommend(user_id)
      predictions = client.predict(user_id, [r.movie_id for r in recommendations[:PREDICTED_MOVIES]])
      unknown_user = client.is_out_of_vocabulary(user_id)
  finally:
    server.stop()
  result = {
      "model_name": model_name, "version": version, "user_id": user_id, "unknown_user": unknown_user,
      "recommend": [{**dataclasses.asdict(r), "title": titles.get(r.movie_id, "")} for r in recommendations],
      "predict": [{**dataclasses.asdict(p), "title": titles.get(p.movie_id, "")} for p in predictions],
  }
  _print(result, f"localhost:{server.grpc_port}")
  return result


def _print(result: Dict[str, Any], target: str) -> None:
  print(f"\nModel {result['model_name']} version {result['version']} served at {target} (embedded server, "
        "batching on), now stopped.")
  print(f"recommend --user {result['user_id']}:"
        + (" (not in the training data: cold-start answers)" if result["unknown_user"] else ""))
  for rank, r in enumerate(result["recommend"], 1):
    print(f"  {rank:>2}. {r['title'] or r['movie_id']}  (movie {r['movie_id']}, score {r['score']:.4f})")
  print(f"predict --user {result['user_id']} --movies {','.join(p['movie_id'] for p in result['predict'])}:")
  for p in result["predict"]:
    print(f"  {p['title'] or p['movie_id']}: score {p['score']:.4f}, P(interaction) {p['interaction']:.4f}, "
          f"P(liked) {p['liked']:.4f}")
