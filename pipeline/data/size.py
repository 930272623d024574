"""How many ratings a DataConfig names, known before anything is read in full (for choosing how Beam runs)."""
from typing import Optional

from pipeline.config import DataConfig
from pipeline.data import fetch
from pipeline.data import movielens


def expected_ratings(data: DataConfig) -> Optional[int]:
  """Ratings of `data`: counted in a copy on disk, the synthetic shape's, or the published release's count;
  None for a release this project does not know."""
  if data.data_dir is not None:
    return movielens.count_ratings(data.data_dir)
  if data.dataset == "synthetic":
    return data.synthetic_ratings
  release = fetch.RELEASES.get(data.dataset)
  return release.ratings if release is not None else None
