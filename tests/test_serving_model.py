"""schema/serving_model.py: the one loader of a serving model's signature."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from schema.serving_model import ARTIFACT_SERVING_DIR, ServingModel, ServingModelError, artifact_serving_path


class _Lengths(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(self, examples):
        return {"length": tf.strings.length(examples)}


def _save(path, with_signature=True):
    module = _Lengths()
    signatures = {"serving_default" if with_signature else "other": module.serve}
    tf.saved_model.save(module, str(path), signatures=signatures)
    return path


def test_calls_the_serving_signature_on_serialized_examples(tmp_path):
    model = ServingModel(_save(tmp_path / "m"))
    out = model([b"ab", b"abcd", b""])
    assert set(out) == {"length"} and isinstance(out["length"], np.ndarray)
    assert out["length"].tolist() == [2, 4, 0]


def test_a_folder_that_is_not_a_model_is_named(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(ServingModelError, match=f"the SavedModel at {tmp_path / 'junk'} does not load"):
        ServingModel(tmp_path / "junk")


def test_a_model_without_the_serving_signature_is_refused(tmp_path):
    with pytest.raises(ServingModelError, match="has no 'serving_default' signature"):
        ServingModel(_save(tmp_path / "m", with_signature=False))


def test_artifact_path_prefers_the_trainers_serving_folder(tmp_path):
    _save(tmp_path / "artifact" / ARTIFACT_SERVING_DIR)
    assert artifact_serving_path(str(tmp_path / "artifact")) == str(tmp_path / "artifact" / ARTIFACT_SERVING_DIR)
    assert artifact_serving_path(str(tmp_path / "pushed")) == str(tmp_path / "pushed")
