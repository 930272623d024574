"""TF Serving's file-system source: the versions on disk, the ones a model's version policy aspires to, and
the fingerprint that tells whether a version's files changed since it failed to load."""
import dataclasses
import hashlib
import logging
from pathlib import Path
from typing import Dict, List, Set

from tensorflow_serving.config import model_server_config_pb2

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Versions:
  """One poll of a model's base_path: every numeric version folder, and the ones its policy aspires to."""
  on_disk: Dict[int, Path]
  aspired: Set[int]


def poll(config: model_server_config_pb2.ModelConfig) -> Versions:
  """Lists `config.base_path` and applies `config.model_version_policy` to what is there."""
  on_disk = _list_versions(Path(config.base_path))
  return Versions(on_disk, _aspired_versions(config, sorted(on_disk)))


def _list_versions(base_path: Path) -> Dict[int, Path]:
  """Numeric sub-folders of `base_path` -> their paths (other names are ignored, as in TF Serving)."""
  if not base_path.is_dir():
    log.warning("No versions of servable found under base path %s (missing)", base_path)
    return {}
  return {int(child.name): child for child in base_path.iterdir() if child.name.isdigit() and child.is_dir()}


def _aspired_versions(config: model_server_config_pb2.ModelConfig, on_disk: List[int]) -> Set[int]:
  """Applies the model_version_policy (default: latest 1) to the sorted versions found on disk."""
  policy = config.model_version_policy
  kind = policy.WhichOneof("policy_choice")
  if kind == "all":
    return set(on_disk)
  if kind == "specific":
    return set(policy.specific.versions) & set(on_disk)
  count = policy.latest.num_versions if kind == "latest" and policy.latest.num_versions > 0 else 1
  return set(on_disk[-count:])


def fingerprint(path: Path) -> str:
  """Names, sizes and modification times of every file under `path`: changes while a version is written."""
  digest = hashlib.sha1()
  for file in sorted(p for p in path.rglob("*") if p.is_file()):
    stat = file.stat()
    digest.update(f"{file.relative_to(path)}:{stat.st_size}:{stat.st_mtime_ns};".encode())
  return digest.hexdigest()
