"""MovieLens readers: every format, and every kind of bad input with file and line in the error."""
from pathlib import Path

import pytest

from pipeline.data import movielens
from pipeline.data.bad_rows import BadRowError, BadRows

ML_100K_ITEM = ("1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
                "2|Caf\xe9 (1995)|01-Jan-1995||http://x|1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
                "3|No Flags (1996)|01-Jan-1996||http://x|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n")
LATEST_MOVIES = ('movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n'
                 '2,"American President, The (1995)",Comedy|Drama\n3,Nothing (2000),(no genres listed)\n')


def write_100k(tmp_path: Path, ratings: str) -> Path:
  (tmp_path / "u.item").write_bytes(ML_100K_ITEM.encode("latin-1"))
  (tmp_path / "u.data").write_text(ratings)
  return tmp_path


def write_1m(tmp_path: Path, ratings: str) -> Path:
  (tmp_path / "movies.dat").write_bytes("1::Toy Story (1995)::Animation|Children's|Comedy\n"
                                        "2::Caf\xe9 (1995)::Drama\n".encode("latin-1"))
  (tmp_path / "ratings.dat").write_text(ratings)
  return tmp_path


def write_latest(tmp_path: Path, ratings: str) -> Path:
  (tmp_path / "movies.csv").write_text(LATEST_MOVIES)
  (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + ratings)
  return tmp_path


def test_ml_100k_reads_tabs_latin1_titles_and_genre_flags(tmp_path):
  loaded = movielens.load(write_100k(tmp_path, "196\t1\t3\t881250949\n22\t2\t5\t881250950\n"), BadRows())
  table = movielens.ratings_table(loaded).set_index("movie_id")
  assert list(table.columns) == ["user_id", "rating", "timestamp", "title", "genres"]
  assert table.loc[1, "genres"] == "Animation|Children's|Comedy"
  assert table.loc[2, "title"] == "Caf\xe9 (1995)"
  assert table.loc[2, "genres"] == "unknown"
  assert loaded.movies.set_index("movie_id").loc[3, "genres"] == "(no genres listed)"
  assert table.loc[1, "user_id"] == 196 and table.loc[1, "timestamp"] == 881250949


def test_ml_1m_reads_double_colon_files(tmp_path):
  loaded = movielens.load(write_1m(tmp_path, "1::1::5::978300760\n1::2::3::978302109\n"), BadRows())
  table = movielens.ratings_table(loaded)
  assert table.rating.tolist() == [5.0, 3.0]
  assert table.title.tolist() == ["Toy Story (1995)", "Caf\xe9 (1995)"]
  assert table.genres.tolist() == ["Animation|Children's|Comedy", "Drama"]


def test_ml_latest_reads_quoted_titles_half_stars_and_crlf(tmp_path):
  loaded = movielens.load(write_latest(tmp_path, "1,2,4.5,964982703\r\n7,1,0.5,964981247\r\n"), BadRows())
  table = movielens.ratings_table(loaded).set_index("user_id")
  assert table.loc[1, "title"] == "American President, The (1995)"
  assert table.loc[1, "rating"] == pytest.approx(4.5)
  assert table.loc[7, "genres"] == "Adventure|Animation"
  assert loaded.movies.set_index("movie_id").loc[3, "genres"] == "(no genres listed)"


@pytest.mark.parametrize("line, problem", [
    ("1,1,4.0", "expected 4 fields"),
    ("1;1;4.0;964982703", "expected 4 fields"),
    ("x1,1,4.0,964982703", "user id 'x1' is not a non-negative integer"),
    ("1,one,4.0,964982703", "movie id 'one' is not a non-negative integer"),
    ("1,1,good,964982703", "rating 'good' is not a number"),
    ("1,1,5.5,964982703", "rating 5.5 is outside 0.5..5.0"),
    ("1,1,0.0,964982703", "rating 0.0 is outside 0.5..5.0"),
    ("1,1,4.0,2020-01-01", "timestamp '2020-01-01' is not an integer"),
    ("1,99,4.0,964982703", "movie id 99 is not in movies.csv"),
    ("1,2,3.0,964982700", "user 1 rated movie 2 again (first at line 2)"),
])
def test_bad_rating_rows_fail_with_file_line_and_problem(tmp_path, line, problem):
  path = write_latest(tmp_path, f"1,2,4.0,964982703\n{line}\n3,1,4.0,964982703\n")
  with pytest.raises(BadRowError) as raised:
    movielens.load(path, BadRows("fail"))
  assert raised.value.path == path / "ratings.csv"
  assert raised.value.line == 3
  assert problem in str(raised.value)
  assert str(raised.value).startswith(f"{path / 'ratings.csv'}:3: ")


def test_skip_policy_keeps_good_rows_and_reports_count_and_sample(tmp_path):
  path = write_latest(tmp_path, "1,2,4.0,964982703\n1,1,9,1\nbad\n3,1,4.0,964982703\n")
  bad_rows = BadRows("skip")
  loaded = movielens.load(path, bad_rows)
  assert len(loaded.ratings) == 2
  assert bad_rows.count == 2
  assert [error.line for error in bad_rows.sample] == [3, 4]
  assert "skipped 2 bad row(s)" in bad_rows.summary()


def test_wrong_delimiter_in_100k_is_named(tmp_path):
  with pytest.raises(BadRowError, match=r"u.data:1: expected 4 fields .* separated by TAB, found 1"):
    movielens.load(write_100k(tmp_path, "196,1,3,881250949\n"), BadRows())


def test_bad_movie_rows_fail(tmp_path):
  write_latest(tmp_path, "1,1,4.0,964982703\n")
  (tmp_path / "movies.csv").write_text("movieId,title,genres\n1,A,Drama\n1,B,Drama\n")
  with pytest.raises(BadRowError, match=r"movies.csv:3: movie id 1 listed again \(first at line 2\)"):
    movielens.load(tmp_path, BadRows())
  (tmp_path / "movies.csv").write_text("movieId,title,genres\nA1,A,Drama\n")
  with pytest.raises(BadRowError, match=r"movies.csv:2: movie id 'A1'"):
    movielens.load(tmp_path, BadRows())


def test_missing_files_name_what_was_expected(tmp_path):
  (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
  with pytest.raises(FileNotFoundError, match=r"ratings.csv \+ movies.csv .*found ratings.csv"):
    movielens.load(tmp_path, BadRows())
  with pytest.raises(FileNotFoundError, match="does not exist"):
    movielens.load(tmp_path / "nowhere", BadRows())


def test_shared_ml_100k_has_published_shape(movielens_dir):
  loaded = movielens.load(movielens_dir("ml-100k"), BadRows())
  assert len(loaded.ratings) == 100_000
  assert loaded.ratings.user_id.nunique() == 943
  assert len(loaded.movies) == 1682


def test_shared_ml_latest_small_has_published_shape(movielens_dir):
  loaded = movielens.load(movielens_dir("ml-latest-small"), BadRows())
  assert len(loaded.ratings) == 100_836
  assert loaded.ratings.user_id.nunique() == 610
  assert len(loaded.movies) == 9742
