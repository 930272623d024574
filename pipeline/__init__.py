"""The layer that composes `components/` and `serving/`: the TFX pipeline and its configuration, the data layer
(`data/`), orchestrators (`runners/`), reading runs back from ML Metadata (`runs/`), metrics (`metrics/`), the
report (`report/`), the recommender client and demo (`recommender/`) and the command line (`cli/`)."""
import components  # noqa: F401  (sets TF_USE_LEGACY_KERAS=0 before anything below imports TensorFlow)
