"""Exports the serving model: raw tf.Examples in, the decoded category path out.

One export for the candidate and the baseline, so TFMA and `categorize` read the same
outputs from both. The transform graph travels inside (the tft layer), and so do the
taxonomy's class names and the per-node thresholds.
"""
from __future__ import annotations

import json
import os
from typing import Any, Optional

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft

from schema import features, serving_layout
from schema.encoders import word_mapper
from schema.taxonomy import Taxonomy
from trainer.model import Classifier, class_tables, decode_outputs, threshold_tables

# Raw features a caller must send; labels and slicing attributes are not model inputs.
SERVING_INPUTS = (features.TITLE, features.DESCRIPTION, features.HAS_IMAGE, features.IMAGE,
                  features.TEXT_EMBEDDING, features.IMAGE_EMBEDDING, features.TITLE_MAPPED)


def serving_feature_spec(tft_output: tft.TFTransformOutput) -> dict[str, Any]:
    raw = tft_output.raw_feature_spec()
    spec = {k: v for k, v in raw.items() if k in SERVING_INPUTS}
    for name in (features.TEXT_EMBEDDING, features.IMAGE_EMBEDDING):
        # Zeros when a request has none: a model that does not read them (the bag-of-words model,
        # model_info.json `embedding_features` empty) then takes the same requests.
        feature = spec.get(name)
        if isinstance(feature, tf.io.FixedLenFeature) and feature.default_value is None and feature.shape:
            size = int(np.prod(feature.shape))
            spec[name] = tf.io.FixedLenFeature(feature.shape, feature.dtype, default_value=[0.0] * size)
    mapped = spec.get(features.TITLE_MAPPED)
    if isinstance(mapped, tf.io.FixedLenFeature) and mapped.default_value is None:
        # "" when a request has none: the n-grams then read the title (preprocessing.ngram_title).
        spec[features.TITLE_MAPPED] = tf.io.FixedLenFeature(mapped.shape, mapped.dtype,
                                                            default_value=[""] * int(np.prod(mapped.shape or [1])))
    return spec


class _KerasModelRef:
    """Holds the Keras model out of the SavedModel's object graph (not a Trackable, so
    `tf.saved_model.save` does not follow it); `ServingModule.model_variables` tracks its variables."""

    def __init__(self, model: Classifier):
        self.model = model


class ServingModule(tf.Module):
    """The serving signature and what it reads: the model's variables, the tft layer and the
    taxonomy's tables.

    The Keras model itself is not part of the SavedModel: saved as an attribute, tf_keras
    traces and writes every layer's call functions (to load it back as Keras), which nothing
    here reads and which took most of the export's time and the loads' (BENCHMARKS.md,
    "Pipeline scale"), and its optimizer's Adam slots would be saved beside the weights (three
    times the size). `serve` captures the variables, so they are saved all the same."""

    def __init__(self, model: Classifier, tft_output: tft.TFTransformOutput,
                 taxonomy: Taxonomy, thresholds: Optional[dict], beam_width: int):
        super().__init__()
        self._keras = _KerasModelRef(model)
        self.model_variables = list(model.weights)
        self.tft_layer = tft_output.transform_features_layer()
        self._feature_spec = serving_feature_spec(tft_output)
        self._classes = class_tables(taxonomy)
        self._thresholds = threshold_tables(taxonomy, thresholds)
        self._beam_width = beam_width

    def predict_transformed(self, transformed: dict) -> dict:
        ids, conf = self._keras.model.beam_search(transformed, self._beam_width)
        return decode_outputs(ids, conf, self._classes, self._thresholds)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve(self, examples: tf.Tensor) -> dict:
        raw = tf.io.parse_example(examples, self._feature_spec)
        transformed = self.tft_layer(raw)
        return self.predict_transformed(transformed)


def export_serving_model(
    model: Classifier,
    tft_output: tft.TFTransformOutput,
    taxonomy: Taxonomy,
    thresholds: Optional[dict],
    beam_width: int,
    export_dir: str,
    info: dict,
    word_mapper_file: Optional[str] = None,
) -> None:
    """Writes the SavedModel and its assets.extra; `word_mapper_file`, the Embedder's fitted
    mapper, is copied there as `word_mapper.FILE_NAME`, so `categorize` maps request
    titles with the vocabulary the model was trained on."""
    module = ServingModule(model, tft_output, taxonomy, thresholds, beam_width)
    tf.saved_model.save(module, export_dir, signatures={"serving_default": module.serve})
    assets = os.path.join(export_dir, serving_layout.ASSETS_EXTRA)
    tf.io.gfile.makedirs(assets)
    for name, payload in (
        (serving_layout.ASSETS_TAXONOMY, taxonomy.to_dict()),
        (serving_layout.ASSETS_THRESHOLDS, thresholds or {}),
        (serving_layout.ASSETS_INFO, info),
    ):
        with tf.io.gfile.GFile(os.path.join(assets, name), "w") as handle:
            handle.write(json.dumps(payload, ensure_ascii=False, indent=1))
    if word_mapper_file:
        tf.io.gfile.copy(word_mapper_file, os.path.join(assets, word_mapper.FILE_NAME), overwrite=True)
