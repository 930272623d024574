"""ImportExampleGen's executor for splits that are already TFRecords of tf.Examples: the files are copied.

TFX's own executor reads every record of every split through a Beam pipeline and writes it out again, byte for
byte, into GZIP shards: 14 s of the ml-100k pipeline and 419 s at 5M ratings (BENCHMARKS.md, "Scale"), for
records `recsys` prepared as GZIP tf.Example TFRecords in the first place. This executor copies each split's
files into the artifact's Split-<name>/ as they are. The component stays ImportExampleGen: its driver resolves
spans and versions, fingerprints the input and fills the patterns, so the artifact's properties, span handling
and caching are TFX's. Downstream readers (tfx_bsl) detect GZIP from the `.gz` name, as for TFX's own shards.
"""
import os
from typing import Any, Dict, List

from tfx import types
from tfx.components.util import examples_utils
from tfx.components.example_gen import write_split
from tfx.components.example_gen.import_example_gen import component as import_example_gen
from tfx.dsl.components.base import base_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs as specs
from tfx.utils import proto_utils


class ExampleCopyError(ValueError):
  """The input cannot be imported by copying (a split re-partition asked for, or no files, or mixed compression)."""


def _split_files(input_base: str, split: example_gen_pb2.Input.Split) -> List[str]:
  """The files of one resolved input split, all GZIP (`.gz`) or none, so that readers detect one compression."""
  files = sorted(fileio.glob(os.path.join(input_base, split.pattern)))
  if not files:
    raise ExampleCopyError(f"split '{split.name}': no file matches {os.path.join(input_base, split.pattern)}")
  if len({name.endswith(".gz") for name in files}) > 1:
    raise ExampleCopyError(f"split '{split.name}': {os.path.join(input_base, split.pattern)} matches GZIP (.gz) "
                           f"and uncompressed files; readers take one compression per split")
  return files


class Executor(base_executor.BaseExecutor):
  """Copies each input split's TFRecord files into the Examples artifact's Split-<name>/ folder."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    """Copies the splits of `input_config` (patterns resolved by the driver) and records split names and formats."""
    input_config = proto_utils.json_to_proto(exec_properties[specs.INPUT_CONFIG_KEY], example_gen_pb2.Input())
    output_config = proto_utils.json_to_proto(exec_properties[specs.OUTPUT_CONFIG_KEY], example_gen_pb2.Output())
    if output_config.split_config.splits:
      raise ExampleCopyError("copying keeps the input's splits; an output_config split_config needs TFX's "
                             "ImportExampleGen executor")
    payload_format = exec_properties.get(specs.OUTPUT_DATA_FORMAT_KEY) or example_gen_pb2.FORMAT_TF_EXAMPLE
    if payload_format != example_gen_pb2.FORMAT_TF_EXAMPLE:
      raise ExampleCopyError(f"copying imports tf.Examples; output_data_format "
                             f"{example_gen_pb2.PayloadFormat.Name(payload_format)} needs TFX's executor")
    examples = output_dict[specs.EXAMPLES_KEY]
    file_format = exec_properties.get(specs.OUTPUT_FILE_FORMAT_KEY)
    for artifact in examples:
      artifact.split_names = artifact_utils.encode_split_names([split.name for split in input_config.splits])
      examples_utils.set_payload_format(artifact, payload_format)
      if file_format:  # as TFX's executor: recorded when the component sets it
        examples_utils.set_file_format(artifact, write_split.to_file_format_str(file_format))
    input_base = exec_properties[specs.INPUT_BASE_KEY]
    for split in input_config.splits:
      split_dir = artifact_utils.get_split_uri(examples, split.name)
      fileio.makedirs(split_dir)
      for path in _split_files(input_base, split):
        fileio.copy(path, os.path.join(split_dir, os.path.basename(path)), overwrite=True)


class ImportExampleGen(import_example_gen.ImportExampleGen):
  """TFX's ImportExampleGen (spec, driver, span resolution and artifact) with the copying `Executor`. A Beam
  component's spec must be a BeamExecutorSpec; the executor ignores the Beam arguments it is given."""

  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
