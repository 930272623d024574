"""Model and training hyperparameters: the NeuMF's shape and how the Trainer fits it.

`pipeline/config.py` composes them into the pipeline's one configuration object; the Trainer receives them
through `custom_config`.
"""
import dataclasses
from typing import Literal, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """NeuMF shape: GMF and MLP towers over shared id vocabularies, two heads."""
  gmf_embedding_dim: int = 32
  mlp_embedding_dim: int = 32
  mlp_layers: Tuple[int, ...] = (64, 32, 16)
  # L2 of the GMF/MLP tables and dense layers, the whole of each every step: it makes every table's gradient dense,
  # so each step costs the tables (BENCHMARKS.md, "Scale"). 0 ranked as 1e-6 did on ml-100k (3 seeds).
  l2: float = 0.0
  dropout: float = 0.0
  # "shared": both heads read the GMF and MLP towers only; "mf": the `liked` head adds a biased matrix
  # factorisation of the rating on embeddings of its own, fitted to all five rating levels of rated pairs
  # (squared error) and untouched by the negatives that `interaction` needs; "rating": the served `liked` is that
  # factorisation alone, calibrated, and a `liked` head on the towers (trained, not served) still shapes them, so
  # negatives buy ranking without costing liked AUC (BENCHMARKS.md, issue 14).
  liked_tower: Literal["shared", "mf", "rating"] = "rating"
  liked_embedding_dim: int = 32
  liked_l2: float = 0.0  # L2 of the whole factorisation tables, every step (3e-5 before rating_row_l2)
  # ALS-style L2 of the factorisation ("mf", "rating"): lambda per row over an epoch, applied to the rows each
  # rated pair looks up (weighted by 1 / the row's train count), not to the whole table each step; 0: off.
  # 5 chosen on a validation split (BENCHMARKS.md).
  rating_row_l2: float = 5.0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How the Trainer fits the model and what the export holds."""
  epochs: int = 10
  # At most this many optimizer steps in all: ml-100k trains its 10 epochs, larger sets fewer (with 12 negatives
  # ml-1m 3, ml-25m 1); components/trainer.py epochs_for.
  max_train_steps: int = 30_000
  # 1,024 pairs (78 rated, 12 sampled for each); 2,048 and 4,096 (learning rate 1.5e-3, 2e-3) trained 7-11% faster
  # with steps_per_execution, and 4,096 ranked a little worse (BENCHMARKS.md, "Scale").
  batch_size: int = 1024
  # Optimizer steps per call into the compiled train function (Keras' steps_per_execution): the same steps on
  # the same batches, with Keras' per-step Python work paid once per call: the Trainer 1.7x faster on ml-100k.
  steps_per_execution: int = 64
  learning_rate: float = 1e-3
  # "lazy_adam" (components/lazy_adam.py): a lookup's sparse gradient updates the looked-up rows only, so a step
  # costs the batch: 12.5 ms instead of 81 at ml-25m's tables, the same ranking on ml-100k; "adam": Keras' Adam,
  # every row of every table and both its moments every step. A whole-table L2 (ModelConfig.l2) makes gradients
  # dense either way.
  optimizer: Literal["adam", "lazy_adam"] = "lazy_adam"
  # With liked_tower "rating" negatives no longer cost liked AUC: 12 per rated pair beat 4 and 8 on HR@10 and
  # NDCG@10 (ml-100k validation split; BENCHMARKS.md, issue 14), at 6.5x the steps of one.
  negatives_per_positive: int = 12
  negative_sampler: Literal["uniform", "popularity"] = "uniform"
  interaction_loss_weight: float = 1.0
  # The towers' liked loss is averaged over every pair of a batch, sampled ones included as not liked, and scaled
  # by the share of rated pairs (components/trainer.py), so 1 + negatives_per_positive puts it at the
  # interaction loss's scale; it also weighs the rating factorisation's loss (BENCHMARKS.md).
  liked_loss_weight: float = 13.0
  # score = P(interaction) * P(liked) ** liked_blend; 0.5 beat 0 and 1 with liked_tower "rating" (BENCHMARKS.md).
  liked_blend: float = 0.5
  id_dropout: float = 0.02  # share of training ids replaced by OOV so cold-start embeddings learn
  recommend_k: int = 10
  # `recommend` re-ranks this many movies, picked by a cheap score, with the exact NeuMF; catalogs up to this size
  # are ranked exactly. 500 keeps recall@10 vs exhaustive ranking >= 0.95 at 59,047 movies (BENCHMARKS.md).
  recommend_candidates: int = 500
  # The export ranks every user row (vocabulary and OOV buckets) once as above and `recommend` gathers the row's
  # lists: the same answers at a gather's cost whatever the catalog, for an export that scores users x catalog
  # once (BENCHMARKS.md, `recommend` at catalog scale). False: `recommend` ranks per request.
  recommend_precompute: bool = True
  vocab_oov_buckets: int = 1
  seed: int = 7  # seeds weight init, shuffling and negative sampling
  # Start from the latest blessed model (the Trainer's base_model, components/warm_start.py): its rows of the ids
  # both vocabularies know, copied by id, and its other weights; the first run, without one, trains cold.
  warm_start: bool = False
  # Epochs of a warm-started Trainer (None: `epochs`); BENCHMARKS.md, "Warm start".
  warm_start_epochs: Optional[int] = None
  shuffle_labels: bool = False  # tests only: trains a deliberately worse candidate that must not be blessed
