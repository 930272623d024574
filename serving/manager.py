"""TF Serving's availability-preserving manager: version states, handles, in-flight counts and labels.

Each poll takes the versions the source finds for every model, loads (and warms up) aspired ones before they
take traffic, and unloads versions that are no longer aspired only once an aspired version is AVAILABLE. A
version that fails to load (corrupt or half-written) is reported in the status with its error and retried only
when its files change; the version being served is untouched.
"""
import contextlib
import dataclasses
import logging
import threading
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import grpc
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_pb2
from tensorflow_serving.config import model_server_config_pb2

from serving import errors
from serving import source
from serving.servable import Servable

# ModelVersionStatus.State numbers, read once: each attribute of a proto enum's wrapper is a Python __getattr__,
# and the latest version is resolved on every request.
START, LOADING, AVAILABLE, UNLOADING, END = (get_model_status_pb2.ModelVersionStatus.State.Value(name)
                                             for name in ("START", "LOADING", "AVAILABLE", "UNLOADING", "END"))
LoadFn = Callable[[str, int, Path], Servable]  # (model name, version, version folder) -> loaded, warmed up

log = logging.getLogger(__name__)


@dataclasses.dataclass
class _Version:
  number: int
  path: Path
  state: int = START
  error: Optional[errors.ServingError] = None
  servable: Optional[Servable] = None
  in_flight: int = 0
  fingerprint: str = ""  # of the files when a load failed; a change makes the version eligible again


@dataclasses.dataclass
class _Model:
  config: model_server_config_pb2.ModelConfig
  versions: Dict[int, _Version] = dataclasses.field(default_factory=dict)
  labels: Dict[str, int] = dataclasses.field(default_factory=dict)


class Manager:
  """Owns the served models and their versions; thread-safe.

  Args:
    load_fn: loads and warms up one version; any exception marks the version failed (END with the error).
    allow_version_labels_for_unavailable_models: TF Serving's flag: a new label may name a version that is
      not AVAILABLE yet.
  """

  def __init__(self, load_fn: LoadFn, allow_version_labels_for_unavailable_models: bool = False):
    self._load_fn = load_fn
    self._allow_unavailable_labels = allow_version_labels_for_unavailable_models
    self._models: Dict[str, _Model] = {}
    self._cond = threading.Condition()  # guards _models; signals in-flight requests finishing
    self._poll_lock = threading.Lock()  # one poll or config change at a time

  # Configuration and polling.

  def apply_config(self, config: model_server_config_pb2.ModelServerConfig) -> None:
    """Makes `config`'s model_config_list the served set: adds and polls new models, unloads removed ones,
    updates policies and labels. Returns once the new versions are loaded (as HandleReloadConfigRequest does).

    Raises:
      ServingError: FAILED_PRECONDITION when a version label names a version that is not AVAILABLE.
    """
    wanted = {model.name: model for model in config.model_config_list.config}
    with self._poll_lock:
      with self._cond:
        removed = [name for name in self._models if name not in wanted]
        for name, model_config in wanted.items():
          model = self._models.setdefault(name, _Model(model_config))
          model.config = model_config
      for name in removed:
        self._unload_all(name)
      for name in wanted:
        self._poll_model(name)
      self._apply_labels(wanted)

  def _apply_labels(self, wanted: Dict[str, model_server_config_pb2.ModelConfig]) -> None:
    with self._cond:
      for name, model_config in wanted.items():
        model = self._models[name]
        labels = dict(model_config.version_labels)
        for label, number in sorted(labels.items()):
          version = model.versions.get(number)
          available = version is not None and version.state == AVAILABLE
          if not available and not (self._allow_unavailable_labels and label not in model.labels):
            raise errors.failed_precondition(
                f"Request to assign label to version {number} of model {name}, which is not currently "
                "available for inference.")
        model.labels = labels

  def poll(self) -> None:
    """One file-system poll of every model."""
    self._for_each_model(self._poll_model)

  def _for_each_model(self, action) -> None:
    """Runs `action(name)` for every model, holding the poll lock so polls and stop() never interleave."""
    with self._poll_lock:
      with self._cond:
        names = list(self._models)
      for name in names:
        action(name)

  def stop(self) -> None:
    """Unloads every version (waiting for in-flight requests)."""
    self._for_each_model(self._unload_all)

  def _poll_model(self, name: str) -> None:
    with self._cond:
      model = self._models[name]
      config = model.config
    found = source.poll(config)
    on_disk, aspired = found.on_disk, found.aspired
    for number in sorted(aspired, reverse=True):  # newest first: it is the one that takes traffic
      with self._cond:
        version = model.versions.get(number)
      if version is not None and version.state in (AVAILABLE, LOADING):
        continue
      if version is not None and version.error is not None and version.fingerprint == source.fingerprint(
          on_disk[number]):
        continue  # failed before and its files did not change since
      self._load(model, number, on_disk[number])
    with self._cond:
      aspired_available = any(model.versions.get(n) is not None and model.versions[n].state == AVAILABLE
                              for n in aspired)
      to_unload = [v for n, v in model.versions.items()
                   if n not in aspired and v.state == AVAILABLE and (aspired_available or not aspired)]
      for number in [n for n, v in model.versions.items() if n not in on_disk and v.error is not None]:
        del model.versions[number]  # a failed version that disappeared is forgotten
    for version in to_unload:
      self._unload(name, version)

  def _load(self, model: _Model, number: int, path: Path) -> None:
    name = model.config.name
    version = _Version(number, path, state=LOADING)
    with self._cond:
      model.versions[number] = version
    log.info("Loading servable version {name: %s version: %d} from %s", name, number, path)
    try:
      servable = self._load_fn(name, number, path)
    except Exception as e:  # pylint: disable=broad-except  # any load failure is reported, never fatal
      log.error("Loading servable version {name: %s version: %d} failed: %s", name, number, e)
      error = e if isinstance(e, errors.ServingError) else errors.ServingError(
          _code_of(e), f"{type(e).__name__}: {e}")
      with self._cond:
        version.state, version.error, version.fingerprint = END, error, source.fingerprint(path)
      return
    with self._cond:
      version.servable, version.state = servable, AVAILABLE
    log.info("Successfully loaded servable version {name: %s version: %d}", name, number)

  def _unload(self, name: str, version: _Version) -> None:
    with self._cond:
      version.state = UNLOADING  # stops new requests from getting it
      while version.in_flight:
        self._cond.wait()
      servable, version.servable = version.servable, None
    servable.close()
    with self._cond:
      version.state = END
    log.info("Unloaded servable version {name: %s version: %d}", name, version.number)

  def _unload_all(self, name: str) -> None:
    with self._cond:
      versions = [v for v in self._models[name].versions.values() if v.state == AVAILABLE]
    for version in versions:
      self._unload(name, version)
    with self._cond:
      del self._models[name]

  # Requests.

  @contextlib.contextmanager
  def servable(self, spec: model_pb2.ModelSpec) -> Iterator[Servable]:
    """Yields the AVAILABLE version `spec` asks for (by version, by label, else the latest); the version is
    not unloaded while the block runs.

    Raises:
      ServingError: NOT_FOUND for an unknown model or version, INVALID_ARGUMENT for an unknown label.
    """
    with self._cond:
      version = self._resolve(spec)
      version.in_flight += 1
    try:
      yield version.servable
    finally:
      with self._cond:
        version.in_flight -= 1
        if not version.in_flight:
          self._cond.notify_all()

  def _resolve(self, spec: model_pb2.ModelSpec) -> _Version:
    model = self._models.get(spec.name)
    if spec.HasField("version"):
      request = f"Specific({spec.name}, {spec.version.value})"
      number = spec.version.value
    elif spec.version_label:
      request = f"Specific({spec.name}, label {spec.version_label})"
      if model is not None and spec.version_label not in model.labels:
        raise errors.invalid_argument(
            f"Unrecognized servable version label: {spec.version_label} (model {spec.name}; labels: "
            f"{', '.join(sorted(model.labels)) or 'none'})")
      number = model.labels[spec.version_label] if model is not None else None
    else:
      request = f"Latest({spec.name})"
      available = [] if model is None else [n for n, v in model.versions.items() if v.state == AVAILABLE]
      number = max(available) if available else None
    version = None if model is None or number is None else model.versions.get(number)
    if version is None or version.state != AVAILABLE:
      raise errors.not_found(f"Servable not found for request: {request}")
    return version

  def status(self, spec: model_pb2.ModelSpec) -> List[get_model_status_pb2.ModelVersionStatus]:
    """GetModelStatus: every version TF Serving would list (or the one asked for), newest first."""
    with self._cond:
      model = self._models.get(spec.name)
      if model is None or not model.versions:
        raise errors.not_found(f"Could not find any versions of model {spec.name}")
      if spec.HasField("version") or spec.version_label:
        number = spec.version.value if spec.HasField("version") else model.labels.get(spec.version_label)
        if number not in model.versions:
          raise errors.not_found(f"Could not find version {number if number is not None else spec.version_label} "
                                 f"of model {spec.name}")
        versions = [model.versions[number]]
      else:
        versions = sorted(model.versions.values(), key=lambda v: v.number, reverse=True)
      statuses = []
      for version in versions:
        status = get_model_status_pb2.ModelVersionStatus(version=version.number, state=version.state)
        status.status.SetInParent()  # TF Serving always answers a status (error_code OK when healthy)
        if version.error is not None:
          status.status.error_code = version.error.code.value[0]
          status.status.error_message = version.error.message
        statuses.append(status)
      return statuses


def _code_of(error: Exception) -> grpc.StatusCode:
  """The status a load failure is reported with: TF errors keep their code, a missing file is NOT_FOUND."""
  if isinstance(error, FileNotFoundError):
    return grpc.StatusCode.NOT_FOUND
  if hasattr(error, "error_code"):
    return errors.from_tf_error(error).code
  return grpc.StatusCode.UNKNOWN
