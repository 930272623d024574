"""TFX module code: feature names, hyperparameters, the Transform `preprocessing_fn`, the NeuMF, the Trainer
`run_fn` and the serving export. Imports nothing from `pipeline/` or `serving/`."""
from components import keras3  # noqa: F401  (sets TF_USE_LEGACY_KERAS=0 before anything imports TensorFlow)
