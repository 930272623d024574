"""Config files in TF Serving's text formats, the tensorflow_model_server flags, and the launcher."""
import argparse

import pytest
from google.protobuf import text_format

from serving import batcher
from serving import config_files
from serving import flags
from serving import launcher
from serving.protos import batching_parameters_pb2
from tests.support.serving import REPO
from tests.support.serving import tf_serving_testdata

CONFIG_DIR = REPO / "serving" / "config"


def test_tf_serving_batching_config_parses_with_defaults_for_unset_fields():
  params = config_files.read_batching_parameters(tf_serving_testdata() / "batching_config.txt")
  options = batcher.BatchingOptions.from_proto(params, num_cpus=2)
  assert (options.max_batch_size, options.batch_timeout_s, options.max_enqueued_batches,
          options.num_batch_threads) == (128, 0.0, 1000000, 8)
  assert options.allowed_batch_sizes == () and not options.enable_large_batch_splitting
  defaults = batcher.BatchingOptions.from_proto(batching_parameters_pb2.BatchingParameters(), num_cpus=2)
  assert (defaults.max_batch_size, defaults.max_enqueued_batches, defaults.num_batch_threads) == (
      batcher.DEFAULT_MAX_BATCH_SIZE, batcher.DEFAULT_MAX_ENQUEUED_BATCHES, 2)


def test_batching_parameters_keep_tf_serving_field_numbers():
  """The wire format must match TF Serving's session_bundle_config.proto."""
  fields = {f.name: (f.number, f.message_type.name if f.message_type else f.type)
            for f in batching_parameters_pb2.BatchingParameters.DESCRIPTOR.fields}
  assert fields == {
      "max_batch_size": (1, "Int64Value"), "batch_timeout_micros": (2, "Int64Value"),
      "max_enqueued_batches": (3, "Int64Value"), "num_batch_threads": (4, "Int64Value"),
      "thread_pool_name": (5, "StringValue"), "allowed_batch_sizes": (6, 3), "pad_variable_length_inputs": (7, 8),
      "enable_large_batch_splitting": (8, "BoolValue"), "max_execution_batch_size": (9, "Int64Value")}
  assert batching_parameters_pb2.BatchingParameters.DESCRIPTOR.full_name == "tensorflow.serving.BatchingParameters"


@pytest.mark.parametrize("text, names", [
    ("max_batch_size { value: 8 } allowed_batch_sizes: 2 allowed_batch_sizes: 4", "must end with"),
    ("max_batch_size { value: 8 } allowed_batch_sizes: 4 allowed_batch_sizes: 2 allowed_batch_sizes: 8",
     "must increase"),
    ("num_batch_threads { value: 0 }", "num_batch_threads must be >= 1"),
    ("max_batch_size { value: 8 } enable_large_batch_splitting { value: true } "
     "max_execution_batch_size { value: 16 }", "must not exceed max_batch_size"),
])
def test_batching_parameters_tf_serving_rejects_are_rejected(text, names):
  with pytest.raises(batcher.BatchingConfigError, match=names):
    batcher.BatchingOptions.from_proto(text_format.Parse(text, batching_parameters_pb2.BatchingParameters()), 2)


def test_bad_and_placeholder_model_configs_name_the_problem():
  testdata = tf_serving_testdata()
  with pytest.raises(config_files.ConfigFileError, match="bad_model_config.txt: not a valid"):
    config_files.read_model_server_config(testdata / "bad_model_config.txt")
  with pytest.raises(config_files.ConfigFileError, match="'half_plus_two' must have an absolute base_path"):
    config_files.read_model_server_config(testdata / "good_model_config.txt")  # placeholders not substituted
  with pytest.raises(config_files.ConfigFileError, match="cannot read"):
    config_files.read_monitoring_config(testdata / "missing.txt")


def test_tf_serving_monitoring_config_parses():
  config = config_files.read_monitoring_config(tf_serving_testdata() / "monitoring_config.txt")
  assert config.prometheus_config.enable and config.prometheus_config.path == "/monitoring/prometheus/metrics"


def test_committed_serving_configs_parse_and_validate():
  models = config_files.read_model_server_config(CONFIG_DIR / "models.config")
  (ncf,) = models.model_config_list.config
  assert (ncf.name, ncf.base_path, ncf.model_version_policy.latest.num_versions) == ("ncf", "/models/ncf", 2)
  assert set(ncf.version_labels) == {"stable", "canary"}
  assert ncf.version_labels["stable"] < ncf.version_labels["canary"]
  batcher.BatchingOptions.from_proto(config_files.read_batching_parameters(CONFIG_DIR / "batching_parameters.txt"), 2)
  assert config_files.read_monitoring_config(CONFIG_DIR / "monitoring.config").prometheus_config.enable


@pytest.mark.parametrize("on_disk, stable, canary", [((10, 20, 30), 20, 30), ((10,), 10, 10)])
def test_resolve_model_config_for_a_local_serving_dir(tmp_path, on_disk, stable, canary):
  for version in on_disk:
    (tmp_path / "ncf" / str(version)).mkdir(parents=True)
  (tmp_path / "ncf" / "not-a-version").mkdir()
  config = config_files.read_model_server_config(CONFIG_DIR / "models.config")
  resolved = launcher.resolve_model_config(config, tmp_path)
  (ncf,) = resolved.model_config_list.config
  assert ncf.base_path == str((tmp_path / "ncf").resolve())
  assert dict(ncf.version_labels) == {"stable": stable, "canary": canary}
  config_files.validate_model_server_config(resolved, "resolved")
  assert config.model_config_list.config[0].base_path == "/models/ncf"  # the input is left alone


def test_grpc_channel_arguments():
  from serving.grpc_service import parse_channel_arguments  # pylint: disable=import-outside-toplevel
  assert parse_channel_arguments("grpc.max_receive_message_length=1000, grpc.primary_user_agent=x") == (
      ("grpc.max_receive_message_length", 1000), ("grpc.primary_user_agent", "x"))
  with pytest.raises(config_files.ConfigFileError, match="key=value"):
    parse_channel_arguments("grpc.keepalive")


def test_resolve_model_config_needs_a_pushed_version(tmp_path):
  config = config_files.read_model_server_config(CONFIG_DIR / "models.config")
  with pytest.raises(config_files.ConfigFileError, match="push a model first"):
    launcher.resolve_model_config(config, tmp_path)


def serve_args(argv):
  parser = argparse.ArgumentParser()
  flags.add_server_flags(parser)
  flags.add_launcher_flags(parser)
  return parser.parse_args(argv)


def test_flags_have_tensorflow_model_server_names_and_defaults():
  options = flags.options_from_args(serve_args([]))
  assert (options.port, options.rest_api_port, options.model_name, options.file_system_poll_wait_seconds,
          options.model_config_file_poll_wait_seconds, options.enable_batching, options.enable_model_warmup) == (
              8500, 0, "default", 1, 0, False, True)
  assert flags.options_from_args(serve_args(["--enable_batching"])).enable_batching
  assert not flags.options_from_args(serve_args(["--enable_batching=false"])).enable_batching
  assert flags.options_from_args(serve_args(["--port=9000", "--rest_api_port", "9001"])).rest_api_port == 9001


class Exec(Exception):
  """Stands in for os.execv, which never returns."""


def test_auto_execs_tensorflow_model_server_when_installed(monkeypatch):
  calls = []

  def execv(path, argv):
    calls.append((path, argv))
    raise Exec

  monkeypatch.setattr(launcher.shutil, "which", lambda name: f"/opt/bin/{name}")
  monkeypatch.setattr(launcher.os, "execv", execv)
  with pytest.raises(Exec):
    launcher.serve(serve_args(["--port=9000", "--model_name=ncf", "--model_base_path=/models/ncf",
                               "--enable_batching"]))
  assert calls == [("/opt/bin/tensorflow_model_server", [
      "/opt/bin/tensorflow_model_server", "--port=9000", "--model_name=ncf", "--model_base_path=/models/ncf",
      "--enable_batching=true"])]


def test_auto_falls_back_to_the_embedded_server(monkeypatch, capsys):
  served = []
  monkeypatch.setattr(launcher.shutil, "which", lambda name: None)
  monkeypatch.setattr(launcher, "_serve_embedded", lambda options: served.append(options) or 0)
  assert launcher.serve(serve_args(["--model_base_path=/models/ncf", "--port=9000"])) == 0
  assert served[0].port == 9000 and served[0].model_base_path == "/models/ncf"
  assert launcher.serve(serve_args(["--server", "tfs", "--model_base_path=/m"])) == 2
  assert "tensorflow_model_server is not on PATH" in capsys.readouterr().err


def test_serve_reports_a_bad_config_in_one_line(capsys):
  from pipeline import cli  # pylint: disable=import-outside-toplevel
  bad = tf_serving_testdata() / "bad_model_config.txt"
  # A bad config file is bad input: exit status 2 and one `error:` line (pipeline/cli/__init__.py).
  assert cli.main(["serve", "--server", "embedded", "--port", "0", "--model_config_file", str(bad)]) == 2
  assert f"error: {bad}: not a valid" in capsys.readouterr().err
