"""Downloading releases: checksums, unpacking, caching, and clear errors without network."""
import functools
import hashlib
import http.server
import io
import logging
import threading
import zipfile

import pytest

from pipeline.data import fetch
from tests.test_movielens import LATEST_MOVIES


@pytest.fixture
def release_server(tmp_path):
  """Serves a small ml-latest style zip on loopback; yields (Release, request counter)."""
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w") as zipped:
    zipped.writestr("ml-tiny/movies.csv", LATEST_MOVIES)
    zipped.writestr("ml-tiny/ratings.csv", "userId,movieId,rating,timestamp\n1,1,4.0,1\n")
  (tmp_path / "www").mkdir()
  (tmp_path / "www" / "ml-tiny.zip").write_bytes(buffer.getvalue())
  requests = []

  class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
      requests.append(self.path)

  server = http.server.ThreadingHTTPServer(
      ("127.0.0.1", 0), functools.partial(Handler, directory=str(tmp_path / "www")))
  threading.Thread(target=server.serve_forever, daemon=True).start()
  release = fetch.Release(f"http://127.0.0.1:{server.server_port}/ml-tiny.zip", len(buffer.getvalue()),
                          hashlib.sha256(buffer.getvalue()).hexdigest(), "ml-tiny", 1)
  yield release, requests
  server.shutdown()


def test_download_verifies_unpacks_and_caches(release_server, tmp_path, monkeypatch, caplog):
  release, requests = release_server
  monkeypatch.setitem(fetch.RELEASES, "ml-tiny", release)
  with caplog.at_level(logging.INFO, logger="pipeline.data.progress"):
    path = fetch.fetch("ml-tiny", tmp_path / "cache")
  assert (path / "ratings.csv").is_file() and path == tmp_path / "cache" / "ml-tiny"
  assert "download http://127.0.0.1" in caplog.text  # progress is reported (pipeline/console.py shows it)
  assert fetch.fetch("ml-tiny", tmp_path / "cache") == path
  assert len(requests) == 1  # the second call used the cache


def test_checksum_mismatch_is_refused(release_server, tmp_path, monkeypatch):
  release, _ = release_server
  monkeypatch.setitem(fetch.RELEASES, "ml-tiny", fetch.Release(
      release.url, release.size, "0" * 64, "ml-tiny", release.ratings))
  with pytest.raises(fetch.ChecksumError, match=r"ml-tiny.zip from http://.*expected .* SHA-256 0000"):
    fetch.fetch("ml-tiny", tmp_path / "cache")
  assert not (tmp_path / "cache" / "ml-tiny").exists()


def test_no_network_says_how_to_use_data_dir(tmp_path, monkeypatch):
  monkeypatch.setitem(fetch.RELEASES, "ml-100k", fetch.Release(
      "http://127.0.0.1:9/ml-100k.zip", 1, "0", "ml-100k", 100_000))
  with pytest.raises(fetch.DownloadError, match=r"could not download .*pass --data-dir DIR"):
    fetch.fetch("ml-100k", tmp_path)


def test_data_dir_is_checked_not_copied(tmp_path, movielens_dir):
  assert fetch.fetch("ml-100k", tmp_path, movielens_dir("ml-100k")) == movielens_dir("ml-100k")
  with pytest.raises(FileNotFoundError, match="holds no MovieLens release"):
    fetch.fetch("ml-100k", tmp_path, tmp_path)


def test_every_release_has_a_grouplens_url_and_sha256():
  for name, release in fetch.RELEASES.items():
    assert release.url == f"https://files.grouplens.org/datasets/movielens/{name}.zip"
    assert len(release.sha256) == 64 and release.size > 0
