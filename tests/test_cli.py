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
  assert (tmp_path / "examples" / "eval" / "ratings.tfrecord.gz").is_file()


def test_bad_file_fails_with_its_line(tmp_path):
  cli.main(["data", "synth", "--users", "5", "--movies", "50", "--ratings", "100", "--out", str(tmp_path)])
  with open(tmp_path / "ratings.csv", "a") as f:
    f.write("1,2,seven,100\n")
  done = subprocess.run([sys.executable, "-m", "pipeline.cli", "data", "prepare", "--data-dir", str(tmp_path),
                         "--out", str(tmp_path / "out")], capture_output=True, text=True)
  assert done.returncode != 0
  assert f"{tmp_path / 'ratings.csv'}:102: rating 'seven' is not a number" in done.stderr
