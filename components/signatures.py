"""The serving contract of the exported model: signature, input and output names.

The export (`components/model_export.py`) builds the signatures with these names and every client uses them;
nothing here imports TensorFlow, so a client can read it cheaply.

  serving_default: examples (string [B], serialized tf.Example; reads user_id, movie_id)
                   -> interaction, liked, score (float32 [B])
  predict:         user_id, movie_id (string [B]) -> score, interaction, liked (float32 [B])
  recommend:       user_id (string [B]) -> movie_ids (string [B, K]), scores (float32 [B, K]), best first
"""
from components import features

SERVING_DEFAULT = "serving_default"
PREDICT = "predict"
RECOMMEND = "recommend"

EXAMPLES_INPUT = "examples"
USER_ID_INPUT = features.USER_ID
MOVIE_ID_INPUT = features.MOVIE_ID

INTERACTION_OUTPUT = features.INTERACTION
LIKED_OUTPUT = features.LIKED
SCORE_OUTPUT = "score"  # P(interaction) * P(liked) ** liked_blend
RECOMMENDED_MOVIE_IDS = "movie_ids"
RECOMMENDED_SCORES = "scores"

# TF Serving replays these PredictionLogs before a version takes traffic (path inside the SavedModel).
WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"
