"""Opening a serving model: the one loader of a SavedModel's `serving_default` signature.

`categorize`, the review report and the pusher's infra check all call a pushed or
candidate model the same way (a batch of serialized tf.Examples in, named arrays out), so
they share how it is loaded, how a folder that is not a model is reported, and how the
signature is called.
"""
from __future__ import annotations

import os
from typing import Sequence

SIGNATURE = "serving_default"
# Where TFX's Trainer writes the serving SavedModel inside a Model artifact.
ARTIFACT_SERVING_DIR = "Format-Serving"


class ServingModelError(Exception):
    """The folder does not hold a SavedModel with the serving signature."""


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def artifact_serving_path(model_uri: str) -> str:
    """The SavedModel folder of a Model artifact (its `Format-Serving` folder), or
    `model_uri` itself when it is already a SavedModel folder (a pushed version)."""
    import tensorflow as tf

    path = os.path.join(model_uri, ARTIFACT_SERVING_DIR)
    return path if tf.io.gfile.exists(path) else model_uri


class ServingModel:
    """A loaded SavedModel and its serving signature, called on serialized tf.Examples.

    The loaded object is kept: a signature whose SavedModel is garbage-collected fails."""

    def __init__(self, path: str | os.PathLike):
        import tensorflow as tf

        self.path = str(path)
        try:
            self._loaded = tf.saved_model.load(self.path)
        except Exception as err:  # noqa: BLE001 - TF raises many types for a folder that is not a model
            raise ServingModelError(f"the SavedModel at {self.path} does not load: {_first_line(err)[:300]}") from err
        self._signature = self._loaded.signatures.get(SIGNATURE)
        if self._signature is None:
            raise ServingModelError(f"the SavedModel at {self.path} has no {SIGNATURE!r} signature "
                                    f"(has {sorted(self._loaded.signatures.keys())})")

    def __call__(self, serialized: Sequence[bytes]) -> dict:
        """The signature's outputs, as numpy arrays by output name."""
        import tensorflow as tf

        outputs = self._signature(examples=tf.constant(list(serialized), dtype=tf.string))
        return {name: value.numpy() for name, value in outputs.items()}
