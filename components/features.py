"""Feature names and values shared by the data layer, Transform, Trainer, Evaluator and clients.

A rename happens here and nowhere else.
"""
# Raw features of the tf.Examples the data layer writes (one example per (user, movie) pair).
USER_ID = "user_id"            # bytes, MovieLens user id as text
MOVIE_ID = "movie_id"          # bytes, MovieLens movie id as text
GENRES = "genres"              # bytes list, one value per genre (multi-valued)
RATING = "rating"              # float, 0.5..5 for rated pairs, 0.0 for sampled unrated pairs
TIMESTAMP = "timestamp"        # int64, seconds since epoch; 0 for sampled pairs
LIKED = "liked"                # int64, 1 when rating >= LIKED_THRESHOLD
INTERACTION = "interaction"    # int64, 1 for a rated pair, 0 for a sampled unrated pair
IS_SAMPLED = "is_sampled"      # int64, 1 for the eval split's fixed sampled unrated pairs
USER_ACTIVITY = "user_activity"  # bytes, bucket of the user's train rating count (for slicing)

LIKED_THRESHOLD = 4.0
NO_GENRE = "(no genres listed)"  # MovieLens' own spelling for a movie without genres

# User-activity buckets: (lower bound of train ratings, label), ascending.
USER_ACTIVITY_BUCKETS = ((0, "<20"), (20, "20-49"), (50, "50-99"), (100, "100-199"), (200, "200+"))

TRAIN_SPLIT = "train"
EVAL_SPLIT = "eval"  # held-out rated pairs + the sampled unrated pairs the Evaluator judges
RANKING_SPLIT = "ranking"  # the other sampled unrated pairs of each eval user: ranking candidates only
