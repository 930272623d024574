"""Keras 3 for every TensorFlow import of this project: import this module before TensorFlow.

tensorflow_transform sets TF_USE_LEGACY_KERAS=1 when the variable is unset, which would silently switch `tf.keras`
to Keras 2. The models here are Keras 3 (`import keras`), so the switch is set to 0 deliberately, here and nowhere
else; `components/__init__.py` imports this module, so any import of `components` (and of `pipeline`, which
imports `components` first) sets it.
"""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "0"
