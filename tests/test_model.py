"""NeuMF build, the Trainer's input pipeline and the exported signatures, on made-up data (about 60 s)."""
import dataclasses
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
from tensorflow_serving.apis import prediction_log_pb2

from components import features
from components import model as ncf_model
from components import model_export
from components import signatures
from components import trainer
from tests.support import testdata

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def transformed(tmp_path_factory):
  """Tiny data through Transform, once for every tower: (transform output directory, train file pattern)."""
  work = tmp_path_factory.mktemp("ncf-transform")
  testdata.write_examples(testdata.make_examples(), work / "raw")
  return testdata.run_transform(work / "raw", work / "transform")


@pytest.fixture(scope="module", params=["shared", "mf", "rating"])
def trained(request, transformed, tmp_path_factory):
  """The tiny data and its transform graph -> trained NeuMF (each `liked` tower) -> SavedModel; returns the
  pieces the tests look at."""
  work = tmp_path_factory.mktemp("ncf")
  transform_dir, train_files = transformed
  tf_transform_output = tft.TFTransformOutput(str(transform_dir))
  model_config = dataclasses.replace(testdata.TINY_MODEL, liked_tower=request.param)
  model, catalog = trainer.train_model([train_files], tf_transform_output, testdata.tfrecord_dataset_factory,
                                       model_config, testdata.TINY_TRAIN)
  export_dir = work / "export"
  model_export.export_serving_model(model, tf_transform_output, export_dir, testdata.TINY_TRAIN, "ncf")
  _, pairs = trainer.read_train_split([train_files], tf_transform_output, testdata.tfrecord_dataset_factory)
  return {"liked_tower": request.param, "model": model, "catalog": catalog, "output": tf_transform_output,
          "train_files": [train_files], "pairs": pairs,
          "export_dir": export_dir, "loaded": tf.saved_model.load(str(export_dir))}


def test_model_is_sized_from_transform_vocabularies(trained):
  output, model = trained["output"], trained["model"]
  users = output.num_buckets_for_transformed_feature(features.USER_ID)
  movies = output.num_buckets_for_transformed_feature(features.MOVIE_ID)
  assert users == output.vocabulary_size_by_name(features.USER_ID) + 1  # one OOV bucket
  assert model.get_layer("user_gmf_embedding").input_dim == users
  assert model.get_layer("movie_mlp_embedding").input_dim == movies
  heads = model({features.USER_ID: tf.constant([0, 1, users - 1], tf.int64),
                 features.MOVIE_ID: tf.constant([0, 1, movies - 1], tf.int64)})
  # The "mf" and "rating" liked towers also output the centred rating they are trained on and its rows' squared
  # norms (rating_row_l2 > 0, the default), "rating" the towers' liked head too (training targets, not served).
  factorisation = {ncf_model.RATING_OUTPUT, ncf_model.RATING_USER_NORM, ncf_model.RATING_MOVIE_NORM}
  assert testdata.TINY_MODEL.rating_row_l2 > 0
  extra = {"shared": set(), "mf": factorisation,
           "rating": factorisation | {ncf_model.TOWERS_LIKED_OUTPUT}}[trained["liked_tower"]]
  assert set(heads) == set(ncf_model.HEADS) | extra
  for head in ncf_model.HEADS:
    assert heads[head].shape == (3,)
    assert np.all((heads[head].numpy() > 0) & (heads[head].numpy() < 1))


def test_genre_table_is_multi_hot(trained):
  genre_rows = trained["catalog"].movie_genres[:trained["catalog"].known_movies]
  # Every made-up movie has one or two genres; both must be present, weighted equally.
  counts = (genre_rows > 0).sum(axis=1)
  assert set(counts) <= {1, 2} and 2 in counts
  np.testing.assert_allclose(genre_rows.sum(axis=1), 1.0, rtol=1e-6)


def test_the_train_split_is_read_once_into_the_catalog_and_its_rated_pairs(trained):
  catalog, pairs = trained["catalog"], trained["pairs"]  # the Trainer's read and the fixture's
  records = [tf.train.Example.FromString(record.numpy()) for record in tf.data.TFRecordDataset(
      tf.io.gfile.glob(trained["train_files"][0]), "GZIP")]
  assert set(pairs) == set(trainer.PAIR_COLUMNS)
  assert all(len(column) == len(records) for column in pairs.values())
  np.testing.assert_array_equal(catalog.movie_counts, np.bincount(pairs[features.MOVIE_ID],
                                                                  minlength=catalog.num_movies))
  np.testing.assert_array_equal(catalog.user_counts, np.bincount(pairs[features.USER_ID],
                                                                 minlength=catalog.num_users))
  assert catalog.mean_rating == pytest.approx(np.mean(pairs[features.RATING]))
  assert catalog.mean_rating == pytest.approx(np.mean([r.features.feature[features.RATING].float_list.value[0]
                                                       for r in records]))
  # The raw examples went through Transform's graph, in file order: ids became their vocabulary indices.
  for name in (features.USER_ID, features.MOVIE_ID):
    index = {value: i for i, value in enumerate(trained["output"].vocabulary_by_name(name))}
    np.testing.assert_array_equal(pairs[name], [index[r.features.feature[name].bytes_list.value[0]] for r in records])
  np.testing.assert_array_equal(pairs[features.LIKED], [r.features.feature[features.LIKED].int64_list.value[0]
                                                        for r in records])


def test_every_epoch_visits_each_rated_pair_once_in_a_new_order_with_new_negatives(trained):
  config = dataclasses.replace(testdata.TINY_TRAIN, id_dropout=0.0)
  catalog, pairs = trained["catalog"], trained["pairs"]
  dataset = trainer.make_training_dataset(pairs, catalog, config, seed=1)
  assert int(dataset.cardinality()) == trainer.batches_per_epoch(len(pairs[features.USER_ID]), config)

  def epoch():
    batches = list(dataset)
    assert len(batches) == int(dataset.cardinality())
    inputs = {k: np.concatenate([b[0][k].numpy() for b in batches]) for k in batches[0][0]}
    labels = {k: np.concatenate([b[1][k].numpy() for b in batches]) for k in batches[0][1]}
    weights = {k: np.concatenate([b[2][k].numpy() for b in batches]) for k in batches[0][2]}
    return inputs, labels, weights

  first, second = epoch(), epoch()
  inputs, labels, weights = first
  positives = labels[ncf_model.INTERACTION_HEAD] == 1
  assert (~positives).sum() == config.negatives_per_positive * positives.sum()
  assert np.all(inputs[features.MOVIE_ID][~positives] < catalog.known_movies)  # never an OOV bucket
  np.testing.assert_array_equal(weights[ncf_model.LIKED_HEAD], positives.astype(np.float32))
  assert np.all(labels[ncf_model.LIKED_HEAD][~positives] == 0)
  # Each epoch holds every rated (user, movie, liked) of the split exactly once, in a new order.
  rated = sorted(zip(pairs[features.USER_ID], pairs[features.MOVIE_ID], pairs[features.LIKED].astype(np.float32)))
  orders = []
  for epoch_inputs, epoch_labels in ((first[0], first[1]), (second[0], second[1])):
    rows = epoch_labels[ncf_model.INTERACTION_HEAD] == 1
    order = list(zip(epoch_inputs[features.USER_ID][rows], epoch_inputs[features.MOVIE_ID][rows],
                     epoch_labels[ncf_model.LIKED_HEAD][rows]))
    assert sorted(order) == rated
    orders.append(order)
  assert orders[0] != orders[1]
  # New negatives.
  assert not np.array_equal(np.sort(first[0][features.MOVIE_ID][~positives]),
                            np.sort(second[0][features.MOVIE_ID][second[1][ncf_model.INTERACTION_HEAD] == 0]))
  # The same seed gives the same epochs on every run.
  runs = [next(iter(trainer.make_training_dataset(pairs, catalog, config, seed=1))) for _ in range(2)]
  for key in (features.USER_ID, features.MOVIE_ID):
    np.testing.assert_array_equal(runs[0][0][key], runs[1][0][key])


def test_rating_target_is_the_centred_rating_of_rated_pairs(trained):
  catalog = trained["catalog"]
  dataset = trainer.make_training_dataset(trained["pairs"], catalog, testdata.TINY_TRAIN, seed=1,
                                          rating_target=True)
  _, labels, weights = next(iter(dataset))
  rated = labels[ncf_model.INTERACTION_HEAD].numpy() == 1
  centred = labels[ncf_model.RATING_OUTPUT].numpy()
  np.testing.assert_array_equal(weights[ncf_model.RATING_OUTPUT].numpy(), rated.astype(np.float32))
  # Made-up ratings are 1..5: centred by the train mean, they straddle zero; sampled pairs carry no target.
  assert 1.0 < catalog.mean_rating < 5.0
  assert centred[rated].min() < 0 < centred[rated].max() and np.all(centred[~rated] == 0)
  np.testing.assert_allclose(np.unique(centred[rated] + catalog.mean_rating) % 1, 0, atol=1e-5)


def test_row_norm_targets_weigh_each_rated_pair_by_its_rows_counts(trained):
  catalog = trained["catalog"]
  config = dataclasses.replace(testdata.TINY_TRAIN, id_dropout=0.0)
  dataset = trainer.make_training_dataset(trained["pairs"], catalog, config, seed=1,
                                          rating_target=True, row_norm_targets=True)
  inputs, labels, weights = next(iter(dataset))
  rated = labels[ncf_model.INTERACTION_HEAD].numpy() == 1
  for name, ids, counts in ((ncf_model.RATING_USER_NORM, inputs[features.USER_ID], catalog.user_counts),
                            (ncf_model.RATING_MOVIE_NORM, inputs[features.MOVIE_ID], catalog.movie_counts)):
    # Over an epoch a row is looked up `count` times by rated pairs: its squared norm counts once in all.
    np.testing.assert_allclose(weights[name].numpy(), rated / counts[ids.numpy()], rtol=1e-6)
  assert catalog.user_counts.sum() == catalog.movie_counts.sum()


def test_per_pair_losses_leave_weight_zero_pairs_out():
  inputs = keras.Input(shape=(1,))
  model = keras.Model(inputs, {"p": keras.ops.squeeze(keras.layers.Dense(1, name="p")(inputs), -1)})
  model.compile(loss={"p": trainer._per_pair(keras.losses.mean_squared_error)})
  prediction = float(model.predict(np.ones((1, 1), np.float32), verbose=0)["p"][0])
  labels, weights = np.array([1.0, 2.0, 50.0, -50.0], np.float32), np.array([1.0, 1.0, 0.0, 0.0], np.float32)
  loss = model.evaluate(tf.data.Dataset.from_tensors((np.ones((4, 1), np.float32), {"p": labels}, {"p": weights})),
                        verbose=0)
  # Mean over the batch of the weighted squared errors: the weight-0 pairs' large errors do not count.
  np.testing.assert_allclose(loss, ((prediction - 1) ** 2 + (prediction - 2) ** 2) / 4, rtol=1e-5)


def test_id_dropout_maps_ids_to_oov_buckets(trained):
  catalog = trained["catalog"]
  config = testdata.TINY_TRAIN.__class__(**{**testdata.TINY_TRAIN.__dict__, "id_dropout": 1.0})
  dataset = trainer.make_training_dataset(trained["pairs"], catalog, config, seed=1)
  inputs = next(iter(dataset))[0]
  assert np.all(inputs[features.USER_ID].numpy() >= catalog.known_users)
  assert np.all(inputs[features.MOVIE_ID].numpy() >= catalog.known_movies)


def test_signatures_shapes_and_agreement(trained):
  loaded = trained["loaded"]
  assert {"serving_default", "predict", "recommend"} <= set(loaded.signatures)
  users, movies = ["1", "2", "3"], ["4", "5", "6"]
  predicted = loaded.signatures["predict"](user_id=tf.constant(users), movie_id=tf.constant(movies))
  examples = [testdata.make_example(u, m, ["Drama"], 0.0, 0, True, "<20").SerializeToString()
              for u, m in zip(users, movies)]
  served = loaded.signatures["serving_default"](examples=tf.constant(examples))
  for name in ("score", ncf_model.INTERACTION_HEAD, ncf_model.LIKED_HEAD):
    assert predicted[name].shape == (3,) and predicted[name].dtype == tf.float32
    np.testing.assert_allclose(served[name].numpy(), predicted[name].numpy(), rtol=1e-5)
  np.testing.assert_allclose(predicted["score"].numpy(),
                             predicted[ncf_model.INTERACTION_HEAD].numpy()
                             * predicted[ncf_model.LIKED_HEAD].numpy() ** testdata.TINY_TRAIN.liked_blend,
                             rtol=1e-5)


def test_recommend_returns_k_distinct_known_movies_sorted(trained):
  loaded, output = trained["loaded"], trained["output"]
  k = testdata.TINY_TRAIN.recommend_k
  result = loaded.signatures["recommend"](user_id=tf.constant(["1", "2"]))
  movie_ids, scores = result["movie_ids"].numpy(), result["scores"].numpy()
  assert movie_ids.shape == (2, k) and scores.shape == (2, k)
  known = set(output.vocabulary_by_name(features.MOVIE_ID))
  for row, row_scores in zip(movie_ids, scores):
    assert len(set(row)) == k and set(row) <= known
    assert np.all(np.diff(row_scores) <= 0)
  # The scores are the `predict` scores of those pairs: one scoring path.
  predicted = loaded.signatures["predict"](user_id=tf.constant(["1"] * k), movie_id=tf.constant(movie_ids[0]))
  np.testing.assert_allclose(predicted["score"].numpy(), scores[0], rtol=1e-5)
  # A user's list beats every movie it leaves out.
  everything = sorted(known)
  all_scores = loaded.signatures["predict"](user_id=tf.constant(["1"] * len(everything)),
                                            movie_id=tf.constant(everything))["score"].numpy()
  assert scores[0][-1] >= np.max(all_scores[[m not in set(movie_ids[0]) for m in everything]]) - 1e-6


def _exhaustive_top_k(trained, users, k):
  """[len(users), k] movie ids: the `predict` score of every known movie for each user, best first."""
  movies = trained["output"].vocabulary_by_name(features.MOVIE_ID)
  scores = trained["loaded"].signatures["predict"](
      user_id=tf.constant([u for u in users for _ in movies]),
      movie_id=tf.constant(movies * len(users)))["score"].numpy().reshape(len(users), len(movies))
  return np.array(movies, dtype=object)[np.argsort(-scores, axis=1, kind="stable")[:, :k]]


def test_recommend_equals_exhaustive_ranking_when_catalog_fits_candidates(trained):
  users = trained["output"].vocabulary_by_name(features.USER_ID) + [b"never-seen"]
  assert testdata.TINY_TRAIN.recommend_candidates >= trained["catalog"].known_movies  # the exact path
  got = trained["loaded"].signatures["recommend"](user_id=tf.constant(users))["movie_ids"].numpy()
  np.testing.assert_array_equal(got, _exhaustive_top_k(trained, users, testdata.TINY_TRAIN.recommend_k))


def test_recommend_candidate_stage_keeps_the_exhaustive_top_k(trained):
  output, catalog = trained["output"], trained["catalog"]
  k = testdata.TINY_TRAIN.recommend_k
  candidates = 25  # of the 40 movies: the cheap candidate score picks, the exact NeuMF re-ranks
  assert catalog.known_movies > candidates
  module = model_export.NcfServingModule(trained["model"], output, k, candidates, testdata.TINY_TRAIN.liked_blend,
                                         recommend_precompute=False)
  users = output.vocabulary_by_name(features.USER_ID)
  result = module.recommend(tf.constant(users + [b"never-seen"]))
  movie_ids, scores = result["movie_ids"].numpy(), result["scores"].numpy()
  known = set(output.vocabulary_by_name(features.MOVIE_ID))
  for row, row_scores in zip(movie_ids, scores):
    assert len(set(row)) == k and set(row) <= known
    assert np.all(np.diff(row_scores) <= 0)
  expected = _exhaustive_top_k(trained, users, k)
  recall = np.mean([len(set(row) & set(want)) / k for row, want in zip(movie_ids, expected)])
  assert recall >= 0.95, recall
  # Re-ranked by the exact NeuMF: the scores are `predict`'s.
  predicted = trained["loaded"].signatures["predict"](user_id=tf.constant([users[0]] * k),
                                                      movie_id=tf.constant(movie_ids[0]))
  np.testing.assert_allclose(predicted["score"].numpy(), scores[0], rtol=1e-5)
  # Cold start as with the whole catalog ranked: the unseen user's list is the exhaustive one's.
  assert set(movie_ids[-1]) == set(_exhaustive_top_k(trained, [b"never-seen"], k)[0])
  with pytest.raises(ValueError, match="recommend_candidates"):
    model_export.NcfServingModule(trained["model"], output, k, k - 1, testdata.TINY_TRAIN.liked_blend,
                                  recommend_precompute=False)


def test_precomputed_lists_are_the_ranking_per_request_and_replace_its_tables(trained):
  output, k = trained["output"], testdata.TINY_TRAIN.recommend_k
  users = tf.constant(output.vocabulary_by_name(features.USER_ID) + [b"never-seen"])
  candidates = 25  # the candidate stage, not the exact path: both must give the same lists
  live, precomputed = (model_export.NcfServingModule(trained["model"], output, k, candidates,
                                                     testdata.TINY_TRAIN.liked_blend, recommend_precompute=precompute)
                       for precompute in (False, True))
  expected, got = live.recommend(users), precomputed.recommend(users)
  np.testing.assert_array_equal(got["movie_ids"].numpy(), expected["movie_ids"].numpy())
  np.testing.assert_allclose(got["scores"].numpy(), expected["scores"].numpy(), rtol=1e-6)
  # Every user row has its list (the OOV bucket's is what unseen users get); the ranker's movie tables are gone.
  rows = output.num_buckets_for_transformed_feature(features.USER_ID)
  shapes = {v.name.split(":")[0]: tuple(v.shape) for v in precomputed.variables}
  assert shapes["recommended_movies"] == shapes["recommended_scores"] == (rows, k)
  assert "movie_candidate_table" in {v.name.split(":")[0] for v in live.variables}
  assert not {"movie_candidate_table", "movie_first_layer"} & set(shapes)


def test_unseen_user_gets_popular_movies(trained):
  catalog, output, loaded = trained["catalog"], trained["output"], trained["loaded"]
  k = testdata.TINY_TRAIN.recommend_k
  vocab = output.vocabulary_by_name(features.MOVIE_ID)
  counts = catalog.movie_counts[:catalog.known_movies]
  most_popular = {vocab[i] for i in np.argsort(-counts, kind="stable")[:k]}
  recommended = set(loaded.signatures["recommend"](user_id=tf.constant(["never-seen"]))["movie_ids"].numpy()[0])
  # A random list would share about k * k / catalog (2.5 here) movies with the most popular ones.
  assert len(recommended & most_popular) >= 0.7 * k, (recommended, most_popular)


def test_warmup_requests_replay_through_the_signatures(trained):
  path = trained["export_dir"] / signatures.WARMUP_FILE
  replayed = []
  for record in tf.data.TFRecordDataset(str(path)):
    log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
    request = log.predict_log.request
    assert request.model_spec.name == "ncf"
    inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
    outputs = trained["loaded"].signatures[request.model_spec.signature_name](
        **{name: tf.constant(value) for name, value in inputs.items()})
    assert all(tensor.shape[0] == len(inputs[features.USER_ID]) for tensor in outputs.values())
    replayed.append(request.model_spec.signature_name)
  assert sorted(replayed) == ["predict", "recommend"]


def test_export_loads_in_a_fresh_process(trained):
  script = ("import sys, tensorflow as tf\n"
            "m = tf.saved_model.load(sys.argv[1])\n"
            "r = m.signatures['recommend'](user_id=tf.constant(['1']))\n"
            "print(','.join(v.decode() for v in r['movie_ids'].numpy()[0]))\n")
  result = subprocess.run([sys.executable, "-c", script, str(trained["export_dir"])], capture_output=True,
                          text=True, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
  expected = trained["loaded"].signatures["recommend"](user_id=tf.constant(["1"]))["movie_ids"].numpy()[0]
  assert result.stdout.strip().splitlines()[-1] == ",".join(v.decode() for v in expected)


def test_export_restores_like_tf_serving(trained):
  """TF Serving restores a SavedModel into a Session with the saver's restore op, not by its object graph: every
  variable the signatures read must be restored that way (a tracked Keras model is not: keras-team/keras#20096),
  and the export carries the model's weights once, without the optimizer's slots."""
  users, movies = np.array([b"1", b"2", b"unseen"], object), np.array([b"4", b"5", b"6"], object)
  requests = {"predict": {"user_id": users, "movie_id": movies}, "recommend": {"user_id": users}}
  expected = {name: trained["loaded"].signatures[name](**{key: tf.constant(v) for key, v in feeds.items()})
              for name, feeds in requests.items()}
  graph = tf.Graph()
  with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
    meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(trained["export_dir"]))
    for name, feeds in requests.items():
      signature = meta_graph.signature_def[name]
      restored = session.run({key: info.name for key, info in signature.outputs.items()},
                             {signature.inputs[key].name: value for key, value in feeds.items()})
      for key, value in expected[name].items():
        np.testing.assert_array_equal(restored[key], value.numpy(), err_msg=f"{name}/{key}")
  keys = [key for key, _ in tf.train.list_variables(str(trained["export_dir"] / "variables" / "variables"))]
  assert not [key for key in keys if "optimizer" in key or "velocity" in key or "momentum" in key]
  weights = {weight.path for weight in trained["model"].weights}
  assert set(getattr(trained["loaded"], model_export.MODEL_WEIGHTS)) == weights
  assert len([key for key in keys if key.startswith(model_export.MODEL_WEIGHTS)]) == len(weights)
