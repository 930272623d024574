"""The copying ImportExampleGen executor: the artifact TFX's own executor writes, without the Beam re-write."""
from pathlib import Path
from typing import Dict, List

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts
from tfx.components.example_gen.import_example_gen import executor as tfx_executor
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils
from tfx.types import standard_component_specs as specs
from tfx.utils import proto_utils

from pipeline import example_copy

SPLITS = ("train", "eval")


def _write(path: Path, records: List[bytes], compression: str = "GZIP") -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  with tf.io.TFRecordWriter(str(path), options=compression) as writer:
    for record in records:
      writer.write(record)


def _example(user: int, movie: int) -> bytes:
  return tf.train.Example(features=tf.train.Features(feature={
      "user_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(user).encode()])),
      "movie_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(movie).encode()]))})).SerializeToString()


def _exec_properties(input_base: Path, output_config: example_gen_pb2.Output = example_gen_pb2.Output()) -> dict:
  input_config = example_gen_pb2.Input(splits=[
      example_gen_pb2.Input.Split(name=split, pattern=f"{split}/*") for split in SPLITS])
  return {specs.INPUT_BASE_KEY: str(input_base), specs.INPUT_CONFIG_KEY: proto_utils.proto_to_json(input_config),
          specs.OUTPUT_CONFIG_KEY: proto_utils.proto_to_json(output_config),
          specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
          specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP}


def _run(executor, exec_properties: dict, uri: Path) -> standard_artifacts.Examples:
  examples = standard_artifacts.Examples()
  examples.uri = str(uri)
  executor.Do({}, {specs.EXAMPLES_KEY: [examples]}, exec_properties)
  return examples


def _records(examples: standard_artifacts.Examples) -> Dict[str, List[bytes]]:
  """Split -> its sorted records, read as downstream components read them (compression from the file names)."""
  read = {}
  for split in artifact_utils.decode_split_names(examples.split_names):
    files = tf.io.gfile.glob(f"{artifact_utils.get_split_uri([examples], split)}/*")
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP" if files[0].endswith(".gz") else "")
    read[split] = sorted(dataset.as_numpy_iterator())
  return read


def test_the_copy_reads_as_tfx_executor_output_does(tmp_path):
  input_base = tmp_path / "prepared"
  _write(input_base / "train" / "part-0.tfrecord.gz", [_example(u, m) for u in range(20) for m in range(3)])
  _write(input_base / "train" / "part-1.tfrecord.gz", [_example(u, 7) for u in range(5)])
  _write(input_base / "eval" / "ratings.tfrecord.gz", [_example(u, 9) for u in range(11)])
  properties = _exec_properties(input_base)

  ours = _run(example_copy.Executor(), properties, tmp_path / "copy")
  theirs = _run(tfx_executor.Executor(), properties, tmp_path / "beam")

  assert artifact_utils.decode_split_names(ours.split_names) == list(SPLITS)
  assert ours.split_names == theirs.split_names
  assert examples_utils.get_payload_format(ours) == examples_utils.get_payload_format(theirs)
  assert examples_utils.get_file_format(ours) == examples_utils.get_file_format(theirs) == "tfrecords_gzip"
  assert _records(ours) == _records(theirs)
  assert len(_records(ours)["train"]) == 65 and len(_records(ours)["eval"]) == 11
  copied = sorted(p.name for p in Path(artifact_utils.get_split_uri([ours], "train")).iterdir())
  assert copied == ["part-0.tfrecord.gz", "part-1.tfrecord.gz"]


def test_refuses_a_split_with_gzip_and_uncompressed_files(tmp_path):
  input_base = tmp_path / "prepared"
  _write(input_base / "train" / "a.tfrecord.gz", [_example(1, 1)])
  _write(input_base / "train" / "b.tfrecord", [_example(1, 2)], compression="")
  _write(input_base / "eval" / "c.tfrecord.gz", [_example(2, 1)])
  with pytest.raises(example_copy.ExampleCopyError, match=r"split 'train': .*train/\* matches GZIP"):
    _run(example_copy.Executor(), _exec_properties(input_base), tmp_path / "out")


def test_refuses_a_split_without_files(tmp_path):
  input_base = tmp_path / "prepared"
  _write(input_base / "train" / "a.tfrecord.gz", [_example(1, 1)])
  with pytest.raises(example_copy.ExampleCopyError, match=r"split 'eval': no file matches .*eval/\*"):
    _run(example_copy.Executor(), _exec_properties(input_base), tmp_path / "out")


def test_refuses_an_output_split_config(tmp_path):
  input_base = tmp_path / "prepared"
  _write(input_base / "train" / "a.tfrecord.gz", [_example(1, 1)])
  _write(input_base / "eval" / "a.tfrecord.gz", [_example(1, 1)])
  output_config = example_gen_pb2.Output(split_config=example_gen_pb2.SplitConfig(splits=[
      example_gen_pb2.SplitConfig.Split(name="a", hash_buckets=1)]))
  with pytest.raises(example_copy.ExampleCopyError, match="split_config needs TFX's"):
    _run(example_copy.Executor(), _exec_properties(input_base, output_config), tmp_path / "out")
