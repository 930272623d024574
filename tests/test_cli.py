"""The `recsys` command line: every command answers --help, and data commands work end to end."""
import subprocess
import sys

import pytest

from pipeline import cli


def commands(parser, prefix=()):
  """Yields every command path of the parser tree, e.g. ('data', 'fetch')."""
  for action in parser._actions:  # pylint: disable=protected-access
    if action.__class__.__name__ == "_SubParsersAction":
      for name, sub in action.choices.items():
        yield prefix + (name,)
        yield from commands(sub, prefix + (name,))


def test_every_command_has_help(capsys):
  paths = list(commands(cli.build_parser()))
  assert ("data", "fetch") in paths and ("data", "synth") in paths and ("pipeline",) in paths
  for path in paths:
    with pytest.raises(SystemExit) as exited:
      cli.main(list(path) + ["--help"])
    assert exited.value.code == 0
    assert "usage: recsys " + " ".join(path) in capsys.readouterr().out


def test_console_script_help_runs_in_a_fresh_process():
  done = subprocess.run([sys.executable, "-m", "pipeline.cli", "--help"], capture_output=True, text=True,
                        check=True)
  assert "usage: recsys" in done.stdout


def test_synth_then_prepare(tmp_path, capsys):
  assert cli.main(["data", "synth", "--users", "20", "--movies", "80", "--ratings", "600",
                   "--out", str(tmp_path / "raw")]) == 0
  assert cli.main(["data", "prepare", "--data-dir", str(tmp_path / "raw"), "--eval-negatives", "5",
                   "--out", str(tmp_path / "examples")]) == 0
  assert "20 users, 80 movies" in capsys.readouterr().out
  assert (tmp_path / "examples" / "eval" / "ratings-00000-of-00001.tfrecord.gz").is_file()


def _error_lines(stderr: str):
  return [line for line in stderr.splitlines() if line.startswith("error: ")]


def test_bad_file_fails_with_its_line_and_no_traceback(tmp_path):
  cli.main(["data", "synth", "--users", "5", "--movies", "50", "--ratings", "100", "--out", str(tmp_path)])
  with open(tmp_path / "ratings.csv", "a") as f:
    f.write("1,2,seven,100\n")
  prepare = ["data", "prepare", "--data-dir", str(tmp_path), "--out", str(tmp_path / "out")]
  done = subprocess.run([sys.executable, "-m", "pipeline.cli", *prepare], capture_output=True, text=True)
  assert done.returncode == 2
  assert _error_lines(done.stderr) == [f"error: {tmp_path / 'ratings.csv'}:102: rating 'seven' is not a number; "
                                       "fix the row, or pass --on-bad-rows skip to skip and count malformed rows"]
  assert "Traceback" not in done.stderr
  debug = subprocess.run([sys.executable, "-m", "pipeline.cli", "--debug", *prepare], capture_output=True, text=True)
  assert debug.returncode == 1 and "Traceback" in debug.stderr and "BadRowError" in debug.stderr


def _fails(argv, status, capsys, expected_type):
  """`recsys argv` exits with `status` and one `error:` line; with --debug the same error propagates."""
  assert cli.main(argv) == status
  captured = capsys.readouterr()
  assert len(_error_lines(captured.err)) == 1, captured.err
  assert "Traceback" not in captured.err
  with pytest.raises(expected_type):
    cli.main(["--debug", *argv])
  return _error_lines(captured.err)[0]


def test_no_network_is_one_error_line(tmp_path, capsys, monkeypatch):
  import urllib.error
  import urllib.request
  from pipeline.data.fetch import DownloadError

  def offline(*args, **kwargs):
    raise urllib.error.URLError("Temporary failure in name resolution")

  monkeypatch.setattr(urllib.request, "urlopen", offline)
  line = _fails(["data", "fetch", "--dataset", "ml-1m", "--cache-dir", str(tmp_path)], 1, capsys, DownloadError)
  assert "could not download" in line and "--data-dir" in line


def test_missing_files_are_one_error_line(tmp_path, capsys):
  line = _fails(["data", "prepare", "--data-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")], 2,
                capsys, FileNotFoundError)
  assert "does not exist" in line
  line = _fails(["report", "--pipeline-root", str(tmp_path), "--out", str(tmp_path / "r.html")], 2, capsys,
                FileNotFoundError)
  assert "run `recsys pipeline run` first" in line


def test_run_not_found_is_one_error_line(tmp_path, capsys):
  from ml_metadata.metadata_store import metadata_store
  from ml_metadata.proto import metadata_store_pb2
  from pipeline.runs.reader import RunNotFoundError

  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = str(tmp_path / "metadata.sqlite")
  config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
  metadata_store.MetadataStore(config)  # an empty store
  line = _fails(["report", "--pipeline-root", str(tmp_path), "--out", str(tmp_path / "r.html")], 2, capsys,
                RunNotFoundError)
  assert "holds no pipeline run" in line


def test_unreachable_server_is_one_error_line(capsys):
  from serving.client import ServerUnreachableError

  line = _fails(["status", "--target", "localhost:1", "--timeout", "2"], 1, capsys, ServerUnreachableError)
  assert "no model server at localhost:1" in line


def test_anomalies_and_not_blessed_map_to_their_status():
  from pipeline.anomalies_gate import ExampleAnomaliesError
  from pipeline.runs.summary import NotBlessedError

  status, line = cli.expected_error(ExampleAnomaliesError("ExampleValidator found anomalies\n  split 'eval'"))
  assert status == 2 and line.splitlines()[0].startswith("error: ExampleValidator found anomalies; ")
  assert cli.expected_error(NotBlessedError("not blessed")) == (1, "error: not blessed")
  assert cli.expected_error(KeyError("a bug")) is None  # unexpected errors keep their traceback


def test_replay_refuses_what_it_cannot_run_in_one_error_line(tmp_path, capsys):
  from pipeline.cli.replay import ReplayDirectoryError
  from pipeline.replay.inject import InjectionError

  line = _fails(["replay", "--out", str(tmp_path)], 2, capsys, ReplayDirectoryError)
  assert "needs --span-by" in line
  (tmp_path / "pipeline").mkdir()
  (tmp_path / "pipeline" / "metadata.sqlite").write_bytes(b"")
  line = _fails(["replay", "--span-by", "week", "--out", str(tmp_path)], 2, capsys, ReplayDirectoryError)
  assert "holds an earlier replay; pass --fresh" in line
  line = _fails(["replay", "--span-by", "week", "--out", str(tmp_path / "r"), "--inject", "2:stale-labels"], 2,
                capsys, InjectionError)
  assert "expected SPAN:KIND with KIND one of shuffled-labels, drifted-genres, corrupt-eval" in line
