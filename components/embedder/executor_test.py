"""Embedder executor: every split embedded, zero image embedding without a photo, the
word mapper fitted on the train split and every title mapped, the schema extended, and a
second run served from the content-hash cache."""
import io
import os

import numpy as np
import tensorflow as tf
from PIL import Image
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils

from components.artifacts import WordMapperArtifact
from components.embedder.executor import Executor
from schema import encoders
from schema.encoders import word_mapper
from schema.encoders.word_mapper import WordMapper
from schema import features
from tests.fixtures.example_gen import write_split


def _image(mode: str, fmt: str, color) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (40, 30), color).save(buf, format=fmt)
    return buf.getvalue()


def _example(pid: str, title: str, image: bytes = b"", has_image: int = None) -> bytes:
    feats = {
        features.ID: tf.train.Feature(bytes_list=tf.train.BytesList(value=[pid.encode()])),
        features.TITLE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[title.encode()])),
        features.DESCRIPTION: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b""])),
        features.IMAGE: tf.train.Feature(bytes_list=tf.train.BytesList(value=[image])),
        features.HAS_IMAGE: tf.train.Feature(int64_list=tf.train.Int64List(
            value=[int(bool(image)) if has_image is None else has_image])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def _read(split_dir):
    files = tf.io.gfile.glob(os.path.join(split_dir, "*.gz"))
    assert files
    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


def _run(tmp_path, name, examples, cache_dir, schema=None):
    out = standard_artifacts.Examples()
    out.uri = str(tmp_path / name / "examples")
    schema_out = standard_artifacts.Schema()
    schema_out.uri = str(tmp_path / name / "schema")
    os.makedirs(schema_out.uri)
    mapper_out = WordMapperArtifact()
    mapper_out.uri = str(tmp_path / name / "word_mapper")
    os.makedirs(mapper_out.uri)
    inputs = {"input_examples": [examples]}
    if schema is not None:
        inputs["input_schema"] = [schema]
    Executor().Do(inputs, {"examples": [out], "schema": [schema_out], "word_mapper": [mapper_out]},
                  {"cache_dir": cache_dir})
    return out, schema_out, mapper_out


def test_embeds_every_split_and_uses_the_cache(tmp_path):
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "in")
    examples.split_names = '["train", "eval"]'
    train = [
        _example("1", "Blue cotton shirt", _image("RGB", "JPEG", (10, 20, 200))),
        _example("2", "Grey wool scarf", _image("L", "JPEG", 128)),
        _example("3", "Red handbag", _image("RGBA", "PNG", (200, 0, 0, 100))),
        _example("4", "Black watch"),  # no photo
        _example("5", "Silver ring", b"not an image", has_image=1),  # undecodable photo
    ]
    write_split(tmp_path / "in" / "Split-train", train)
    write_split(tmp_path / "in" / "Split-eval", [_example("6", "Camisa azul", _image("P", "GIF", 3))])
    cache_dir = str(tmp_path / "cache")

    text_enc, image_enc = encoders.get_text_encoder(), encoders.get_image_encoder()
    texts0, images0 = text_enc.num_encoded, image_enc.num_encoded
    out, schema_out, mapper_out = _run(tmp_path, "first", examples, cache_dir)
    assert artifact_utils.decode_split_names(out.split_names) == ["train", "eval"]
    by_id = {}
    for split in ("train", "eval"):
        for ex in _read(artifact_utils.get_split_uri([out], split)):
            by_id[ex.features.feature[features.ID].bytes_list.value[0].decode()] = ex.features.feature
    assert sorted(by_id) == ["1", "2", "3", "4", "5", "6"]
    for pid, feats in by_id.items():
        text = np.array(feats[features.TEXT_EMBEDDING].float_list.value)
        image = np.array(feats[features.IMAGE_EMBEDDING].float_list.value)
        assert text.shape == (encoders.TEXT_DIM,) and abs(np.linalg.norm(text) - 1) < 1e-3
        assert image.shape == (encoders.IMAGE_DIM,)
        has_photo = pid in ("1", "2", "3", "6")
        assert feats[features.HAS_IMAGE].int64_list.value[0] == int(has_photo)
        assert (np.abs(image).sum() > 0) == has_photo
    # 6 titles, the 12 words of the train titles (the mapper's vocabulary) and the 2
    # unseen words of the eval title.
    assert text_enc.num_encoded - texts0 == 6 + 12 + 2
    assert image_enc.num_encoded - images0 == 4  # the undecodable one is tried, not embedded

    # The word mapper is fitted on the train split alone: the eval title's Spanish words
    # are not in it, and map to their English counterparts; train titles stay as they are.
    mapper = WordMapper.load(os.path.join(mapper_out.uri, word_mapper.FILE_NAME))
    assert set(mapper.vocabulary) == {"blue", "cotton", "shirt", "grey", "wool", "scarf", "red", "handbag",
                                      "black", "watch", "silver", "ring"}
    mapped = {pid: feats[features.TITLE_MAPPED].bytes_list.value[0].decode() for pid, feats in by_id.items()}
    assert mapped["1"] == "blue cotton shirt" and mapped["4"] == "black watch"
    assert mapped["6"] == "shirt blue"

    schema = io_utils.SchemaReader().read(os.path.join(schema_out.uri, "schema.pbtxt"))
    dims = {f.name: f.shape.dim[0].size for f in schema.feature}
    assert dims == {features.TEXT_EMBEDDING: 512, features.IMAGE_EMBEDDING: 1280, features.TITLE_MAPPED: 1}

    # Second run on the same catalog: everything comes from the cache, same values.
    # This time with an input schema: it is passed on with the embedding features added.
    curated = standard_artifacts.Schema()
    curated.uri = str(tmp_path / "curated")
    os.makedirs(curated.uri)
    base = schema_pb2.Schema()
    base.feature.add(name=features.TITLE, type=schema_pb2.BYTES)
    io_utils.write_pbtxt_file(os.path.join(curated.uri, "schema.pbtxt"), base)
    texts1, images1 = text_enc.num_encoded, image_enc.num_encoded
    again, schema_again, _ = _run(tmp_path, "second", examples, cache_dir, schema=curated)
    assert (text_enc.num_encoded, image_enc.num_encoded) == (texts1, images1)
    names = [f.name for f in io_utils.SchemaReader().read(os.path.join(schema_again.uri, "schema.pbtxt")).feature]
    assert names == [features.TITLE, features.TEXT_EMBEDDING, features.IMAGE_EMBEDDING, features.TITLE_MAPPED]
    first = {e.features.feature[features.ID].bytes_list.value[0]: e
             for e in _read(artifact_utils.get_split_uri([out], "train"))}
    for ex in _read(artifact_utils.get_split_uri([again], "train")):
        assert ex == first[ex.features.feature[features.ID].bytes_list.value[0]]
