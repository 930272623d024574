"""The Kubernetes manifests of kubeflow/serving/: valid objects that run TF Serving on serving/config/."""
import json
import posixpath
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List

import kubernetes
import pytest
import yaml
from kubernetes.utils import quantity
from tensorflow_serving.config import model_server_config_pb2

from serving import config_files

REPO = Path(__file__).resolve().parents[1]
MANIFESTS_DIR = REPO / "kubeflow" / "serving"
SERVING_CONFIG_DIR = REPO / "serving" / "config"
KUSTOMIZATION = "kustomization.yaml"

# The kubernetes client's model class for each (apiVersion, kind) the manifests may hold.
MODEL_CLASSES = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2HorizontalPodAutoscaler",
}


def _load_yaml(path: Path) -> Dict[str, Any]:
  with path.open() as f:
    return yaml.safe_load(f)


def _source_manifests() -> List[Dict[str, Any]]:
  """The objects of the files kubeflow/serving/kustomization.yaml lists (not the generated ConfigMap)."""
  kustomization = _load_yaml(MANIFESTS_DIR / KUSTOMIZATION)
  documents = []
  for resource in kustomization["resources"]:
    path = MANIFESTS_DIR / resource
    if path.is_file():
      with path.open() as f:
        documents.extend(doc for doc in yaml.safe_load_all(f) if doc)
  return documents


def _config_generator() -> Dict[str, Any]:
  """The one configMapGenerator entry of serving/config/kustomization.yaml."""
  (generator,) = _load_yaml(SERVING_CONFIG_DIR / KUSTOMIZATION)["configMapGenerator"]
  return generator


def _serving_config_files() -> Dict[str, str]:
  """File name -> text of every TF Serving config in serving/config/."""
  return {path.name: path.read_text() for path in sorted(SERVING_CONFIG_DIR.iterdir())
          if path.is_file() and path.name != KUSTOMIZATION}


def _one(documents: List[Dict[str, Any]], kind: str) -> Dict[str, Any]:
  (document,) = [d for d in documents if d["kind"] == kind]
  return document


def _container(deployment: Dict[str, Any]) -> Dict[str, Any]:
  (container,) = deployment["spec"]["template"]["spec"]["containers"]
  return container


def _flags(container: Dict[str, Any]) -> Dict[str, str]:
  """--name=value container args as {name: value}."""
  flags = {}
  for arg in container["args"]:
    name, _, value = arg.partition("=")
    assert name.startswith("--") and value, f"container arg {arg!r} is not --flag=value"
    flags[name[2:]] = value
  return flags


def _mount_path(deployment: Dict[str, Any], volume_name: str) -> str:
  (mount,) = [m for m in _container(deployment)["volumeMounts"] if m["name"] == volume_name]
  return mount["mountPath"]


def _volume(deployment: Dict[str, Any], volume_name: str) -> Dict[str, Any]:
  (volume,) = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == volume_name]
  return volume


def _models_config() -> model_server_config_pb2.ModelServerConfig:
  return config_files.read_model_server_config(SERVING_CONFIG_DIR / "models.config")


def _render() -> List[Dict[str, Any]]:
  """What `kubectl apply -k kubeflow/serving` would apply; skips when kubectl is not installed."""
  kubectl = shutil.which("kubectl")
  if kubectl is None:
    pytest.skip("kubectl (with its built-in kustomize) is not installed")
  rendered = subprocess.run([kubectl, "kustomize", str(MANIFESTS_DIR)], check=True, capture_output=True,
                            text=True).stdout
  return [doc for doc in yaml.safe_load_all(rendered) if doc]


class _Response:
  """The part of an HTTP response that ApiClient.deserialize reads."""

  def __init__(self, document: Dict[str, Any]):
    self.data = json.dumps(document)


def _dropped_fields(original: Any, round_trip: Any, path: str = "") -> List[str]:
  """Paths of the fields of `original` that are missing or changed in `round_trip`."""
  if isinstance(original, dict) and isinstance(round_trip, dict):
    return [dropped for key, value in original.items()
            for dropped in _dropped_fields(value, round_trip.get(key), f"{path}.{key}")]
  if isinstance(original, list) and isinstance(round_trip, list) and len(original) == len(round_trip):
    return [dropped for i, (value, kept) in enumerate(zip(original, round_trip))
            for dropped in _dropped_fields(value, kept, f"{path}[{i}]")]
  return [] if original == round_trip else [path]


def _as_kubernetes_object(document: Dict[str, Any]) -> Any:
  """Deserializes `document` into the client's model; fails on a missing required or an unknown field."""
  api = kubernetes.client.ApiClient()
  model_class = MODEL_CLASSES[(document["apiVersion"], document["kind"])]
  obj = api.deserialize(_Response(document), model_class)
  # The models silently drop fields they do not know, so a misspelt or misplaced field goes missing.
  dropped = _dropped_fields(document, api.sanitize_for_serialization(obj))
  assert not dropped, f"{document['kind']} {document['metadata']['name']}: not {model_class} fields: {dropped}"
  return obj


def test_source_manifests_are_valid_kubernetes_objects():
  documents = _source_manifests()
  assert {d["kind"] for d in documents} == {
      "Deployment", "Service", "HorizontalPodAutoscaler", "PersistentVolumeClaim"}
  for document in documents:
    _as_kubernetes_object(document)


def test_config_map_is_generated_from_every_serving_config_file():
  generator = _config_generator()
  assert sorted(generator["files"]) == sorted(_serving_config_files())
  deployment = _one(_source_manifests(), "Deployment")
  assert _volume(deployment, "config")["configMap"]["name"] == generator["name"]


def test_rendered_config_map_equals_serving_config_byte_for_byte():
  documents = _render()
  for document in documents:
    _as_kubernetes_object(document)
  config_map = _one(documents, "ConfigMap")
  assert config_map["data"] == _serving_config_files()
  # kustomize suffixes the name with a content hash and rewrites the Deployment's reference to it.
  assert config_map["metadata"]["name"].startswith(_config_generator()["name"] + "-")
  deployment = _one(documents, "Deployment")
  assert _volume(deployment, "config")["configMap"]["name"] == config_map["metadata"]["name"]


def test_server_args_name_files_the_config_map_provides():
  deployment = _one(_source_manifests(), "Deployment")
  container = _container(deployment)
  assert container["image"].startswith("tensorflow/serving:")
  flags = _flags(container)
  assert flags["enable_batching"] == "true"
  assert (flags["port"], flags["rest_api_port"]) == ("8500", "8501")
  config_dir = _mount_path(deployment, "config")
  provided = set(_config_generator()["files"])
  for flag in ("model_config_file", "batching_parameters_file", "monitoring_config_file"):
    directory, name = posixpath.split(flags[flag])
    assert directory == config_dir, f"--{flag} is outside the ConfigMap mount {config_dir}"
    assert name in provided, f"--{flag} names {name}, which the ConfigMap does not provide"


def test_version_labels_do_not_stop_the_server_before_their_versions_exist():
  labelled = [model.name for model in _models_config().model_config_list.config if model.version_labels]
  flags = _flags(_container(_one(_source_manifests(), "Deployment")))
  if labelled:
    assert flags.get("allow_version_labels_for_unavailable_models") == "true", labelled
  else:
    assert "allow_version_labels_for_unavailable_models" not in flags


def test_every_model_base_path_is_on_the_model_volume():
  deployment = _one(_source_manifests(), "Deployment")
  models_dir = _mount_path(deployment, "models")
  claim = _volume(deployment, "models")["persistentVolumeClaim"]["claimName"]
  assert _one(_source_manifests(), "PersistentVolumeClaim")["metadata"]["name"] == claim
  models = _models_config().model_config_list.config
  assert models, "serving/config/models.config serves no model"
  for model in models:
    assert posixpath.commonpath([models_dir, model.base_path]) == models_dir, (
        f"model {model.name}: base_path {model.base_path} is not on the model volume at {models_dir}")


def test_service_exposes_grpc_8500_and_rest_8501_of_the_pods():
  documents = _source_manifests()
  service, deployment = _one(documents, "Service"), _one(documents, "Deployment")
  pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
  assert service["spec"]["selector"].items() <= pod_labels.items()
  assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
  container_ports = {p["name"]: p["containerPort"] for p in _container(deployment)["ports"]}
  service_ports = {p["port"]: (p["appProtocol"], container_ports[p["targetPort"]])
                   for p in service["spec"]["ports"]}
  assert service_ports == {8500: ("grpc", 8500), 8501: ("http", 8501)}


def test_probes_watch_the_served_model():
  deployment = _one(_source_manifests(), "Deployment")
  container = _container(deployment)
  ports = {p["name"]: p["containerPort"] for p in container["ports"]}
  readiness = container["readinessProbe"]["httpGet"]
  (model,) = _models_config().model_config_list.config
  assert readiness["path"] == f"/v1/models/{model.name}/metadata"
  assert ports[readiness["port"]] == int(_flags(container)["rest_api_port"])
  for probe in ("livenessProbe", "startupProbe"):
    assert ports[container[probe]["tcpSocket"]["port"]] == int(_flags(container)["port"])


def test_resources_bound_the_pod_and_the_autoscaler_can_use_them():
  documents = _source_manifests()
  deployment, autoscaler = _one(documents, "Deployment"), _one(documents, "HorizontalPodAutoscaler")
  container = _container(deployment)
  resources = container["resources"]
  for resource in ("cpu", "memory"):
    assert (quantity.parse_quantity(resources["requests"][resource])
            <= quantity.parse_quantity(resources["limits"][resource])), resource
  # TensorFlow's thread pools would otherwise be sized from the node's cores.
  cpus = int(quantity.parse_quantity(resources["limits"]["cpu"]))
  flags = _flags(container)
  assert int(flags["tensorflow_intra_op_parallelism"]) == cpus
  target = autoscaler["spec"]["scaleTargetRef"]
  assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
  (metric,) = autoscaler["spec"]["metrics"]
  assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["type"] == "Utilization"
  assert 1 <= autoscaler["spec"]["minReplicas"] <= autoscaler["spec"]["maxReplicas"]
  # A replica count in the Deployment would fight the autoscaler on every apply.
  assert "replicas" not in deployment["spec"]


def test_prometheus_scrapes_the_path_of_the_monitoring_config():
  deployment = _one(_source_manifests(), "Deployment")
  monitoring = config_files.read_monitoring_config(SERVING_CONFIG_DIR / "monitoring.config")
  assert monitoring.prometheus_config.enable
  annotations = deployment["spec"]["template"]["metadata"]["annotations"]
  assert annotations["prometheus.io/path"] == monitoring.prometheus_config.path
  assert annotations["prometheus.io/port"] == _flags(_container(deployment))["rest_api_port"]
