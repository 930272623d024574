"""Downloads MovieLens releases from GroupLens, verifies their checksums and unpacks them."""
import dataclasses
import hashlib
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Dict, Optional

from pipeline.data import movielens
from pipeline.data.progress import Progress

GROUPLENS = "https://files.grouplens.org/datasets/movielens"


@dataclasses.dataclass(frozen=True)
class Release:
  """A published zip: where it is, how big it is, its SHA-256, the folder it unpacks to, and its ratings."""
  url: str
  size: int
  sha256: str
  folder: str
  ratings: int


# Sizes and SHA-256 digests as recorded by TensorFlow Datasets' url_checksums/movielens.txt.
RELEASES: Dict[str, Release] = {
    "ml-100k": Release(f"{GROUPLENS}/ml-100k.zip", 4924029,
                       "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229", "ml-100k", 100_000),
    "ml-1m": Release(f"{GROUPLENS}/ml-1m.zip", 5917549,
                     "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20", "ml-1m", 1_000_209),
    "ml-latest-small": Release(f"{GROUPLENS}/ml-latest-small.zip", 978202,
                               "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
                               "ml-latest-small", 100_836),
    "ml-25m": Release(f"{GROUPLENS}/ml-25m.zip", 261978986,
                      "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa", "ml-25m", 25_000_095),
}


class ChecksumError(ValueError):
  """A downloaded file whose size or SHA-256 is not the published one."""


class DownloadError(OSError):
  """A release that could not be downloaded; the message says how to use a copy on disk instead."""


def fetch(dataset: str, cache_dir: Path, data_dir: Optional[Path] = None) -> Path:
  """Returns a directory holding `dataset`'s files.

  With `data_dir`, checks that it holds a MovieLens release and returns it. Otherwise downloads the
  release into `cache_dir` (once), verifies size and SHA-256 and unpacks it.
  """
  if data_dir is not None:
    movielens.detect_format(Path(data_dir))
    return Path(data_dir)
  if dataset not in RELEASES:
    raise ValueError(f"unknown dataset {dataset!r}; downloadable: {', '.join(RELEASES)}")
  release = RELEASES[dataset]
  cache_dir = Path(cache_dir)
  target = cache_dir / release.folder
  if (target / ".verified").is_file():
    return target
  archive = cache_dir / f"{dataset}.zip"
  if not archive.is_file():
    _download(release, archive)
  _verify(release, archive)
  with zipfile.ZipFile(archive) as zipped:
    zipped.extractall(cache_dir)
  movielens.detect_format(target)
  (target / ".verified").write_text(release.sha256 + "\n")
  return target


def _download(release: Release, archive: Path) -> None:
  partial = archive.with_suffix(".part")
  archive.parent.mkdir(parents=True, exist_ok=True)
  try:
    with urllib.request.urlopen(release.url, timeout=30) as response, open(partial, "wb") as out:
      progress = Progress(f"download {release.url}", release.size, "bytes")
      for chunk in iter(lambda: response.read(1 << 20), b""):
        out.write(chunk)
        progress.update(len(chunk))
      progress.close()
  except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
    partial.unlink(missing_ok=True)
    raise DownloadError(
        f"could not download {release.url}: {error}. Without network, pass --data-dir DIR with an "
        f"unpacked copy of {release.folder} (for example ../shared/data/movielens/{release.folder})"
    ) from error
  shutil.move(partial, archive)


def _verify(release: Release, archive: Path) -> None:
  size = archive.stat().st_size
  digest = hashlib.sha256()
  with open(archive, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  if size != release.size or digest.hexdigest() != release.sha256:
    archive.rename(archive.with_suffix(".corrupt"))
    raise ChecksumError(
        f"{archive} from {release.url}: expected {release.size} bytes with SHA-256 {release.sha256}, got "
        f"{size} bytes with SHA-256 {digest.hexdigest()}; moved aside to {archive.with_suffix('.corrupt')}")
