"""Does training the image network's last stage(s) on product photos beat the frozen probe?

    .venv/bin/python bench/image_finetune.py --pipeline-root pipelines/fashion [--variants head block+head]

A feasibility measurement for adapting the image encoder to catalog photos on 2 CPU cores,
photo only (title blank), on the **calibration** split (the eval split is not read):

1. The photos of the newest CatalogExampleGen run's train and calibration splits (the
   pipeline's own split assignment) and their mirror images go once through
   EfficientNet-Lite0 (schema/encoders/efficientnet_lite0.py, ONNX Runtime) up to the
   input of its last MBConv block (192 channels at 7x7); those activations are stored as
   float16 under `--cache-dir`. Mirroring is the one augmentation that survives storing
   activations: train uses the mirrored copies as extra examples (`--no-flip`: not), and
   every calibration score is also given with the logits of photo and mirror averaged.
2. The rest of the network (block 15: 1x1 expansion 192 -> 1152, 3x3 depthwise, 1x1
   projection to 320; the 1x1 head conv 320 -> 1280; ReLU6 and the global average pool)
   is rebuilt in tf_keras from the same checkpoint, batch norm folded as the ONNX graph
   folds it; on the stored activations it reproduces the frozen embeddings (checked on
   every run, and by tests/test_photo_benches.py).
3. Variants, each a leaf classifier (one class per full category path) trained on the
   train split and scored on calibration:
   - `probe`: bench/quality.py's logistic-regression probe on the frozen embeddings
     (standardised, C chosen on calibration), the reference;
   - `frozen-softmax`: a softmax layer (dropout) on the frozen pooled features, trained the
     way the fine-tuned variants' classifier starts;
   - `head`: that, then the head conv fine-tuned with it (block 15 frozen);
   - `block+head`: that, then block 15 and the head conv fine-tuned with it.
   Fine-tuning reports calibration accuracy after every epoch; the table gives the last
   epoch's and the best epoch's (the best is read off calibration, so slightly optimistic).
4. `--pooling KIND ...` instead compares ways of pooling the frozen network's last feature
   map (1280 channels at 7x7) into the photo's features, each with the frozen softmax of
   step 3 per seed (`--seeds`): `gap` (the encoder's global average, the reference),
   `gap+gmp` (average and maximum), `gem3` (generalised mean, p = 3), `grid2` (the average
   of each of four overlapping 4x4 quadrants: where in the photo a pattern is) and
   `gap+grid2`.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from schema.encoders import efficientnet_lite0  # noqa: E402

TAP_BLOCK = "_blocks.15"  # the last MBConv block; its input is what is stored
SPLITS = ("train", "calibration")
POOLINGS = ("gap", "gap+gmp", "gem3", "grid2", "gap+grid2")


# ---- photos and their stored activations ------------------------------------------------
def newest_examples_uri(pipeline_root: Path) -> str:
    from schema.mlmd import newest, open_store

    store = open_store(str(pipeline_root / "metadata.sqlite"))
    examples = newest(store, "Examples", producer="CatalogExampleGen")
    if examples is None:
        raise SystemExit(f"error: no CatalogExampleGen examples under {pipeline_root}: run the pipeline first")
    return examples.uri


def labelled_photo_bytes(examples_uri: str, split: str) -> list[tuple[bytes, str]]:
    """(encoded photo, full category path) of the labelled products with a photo in one split
    (decodable or not): what the photo benches read."""
    import tensorflow as tf

    from bench.thresholding import split_records
    from schema import features
    from schema.examples import first_bytes, first_int

    rows = []
    for record in split_records(examples_uri, split):
        example = tf.train.Example.FromString(record)
        label = first_bytes(example, features.CATEGORY_PATH).decode()
        if label and first_int(example, features.HAS_IMAGE):
            rows.append((first_bytes(example, features.IMAGE), label))
    return rows


def read_photos(examples_uri: str, split: str) -> tuple[list[np.ndarray], list[str]]:
    """(decoded 224x224 RGB photos, full category path) of the labelled products with a
    decodable photo in one split."""
    from schema.encoders import decode_image

    pixels, labels = [], []
    for photo, label in labelled_photo_bytes(examples_uri, split):
        decoded = decode_image(photo)
        if decoded is not None:
            pixels.append(decoded)
            labels.append(label)
    return pixels, labels


class _TapBuilder(efficientnet_lite0._GraphBuilder):
    """The encoder's graph builder, noting the name of the last block's input tensor."""

    tap: Optional[str] = None

    def block(self, x, prefix, stage, c_in, stride, size):
        if prefix == TAP_BLOCK:
            self.tap = x
        return super().block(x, prefix, stage, c_in, stride, size)


def stem_session(weights: dict, threads: int):
    """ONNX Runtime session: uint8 pixels -> the last block's input [n, 192, 7, 7]."""
    import onnx
    import onnxruntime
    from onnx import helper, TensorProto

    builder = _TapBuilder(weights)
    model = builder.build()
    keep, needed = [], {builder.tap}
    for node in reversed(model.graph.node):  # only the nodes the tap depends on
        if any(out in needed for out in node.output):
            keep.append(node)
            needed.update(node.input)
    del model.graph.node[:]
    model.graph.node.extend(reversed(keep))
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(builder.tap, TensorProto.FLOAT, ["n", 192, 7, 7]))
    used = {i for node in keep for i in node.input}
    initializers = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(initializers)
    onnx.checker.check_model(model)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]), \
        builder.tap


def stem_activations(session, tap: str, pixels: Sequence[np.ndarray], batch: int = 16) -> np.ndarray:
    """-> float16 [n, 7, 7, 192] (channels last, for tf_keras)."""
    out = []
    for i in range(0, len(pixels), batch):
        x = np.ascontiguousarray(np.stack(pixels[i:i + batch]), dtype=np.uint8)
        y = session.run([tap], {efficientnet_lite0.INPUT_NAME: x})[0]
        out.append(np.transpose(y, (0, 2, 3, 1)).astype(np.float16))
    return np.concatenate(out)


def load_or_extract(examples_uri: str, cache_dir: Path, weights: dict, threads: int) -> dict:
    """{split: activations, split + "-flipped": the mirrored photos' activations,
    split + "-labels": full category paths}; computed once per examples artifact."""
    import hashlib

    key = hashlib.sha256(examples_uri.encode()).hexdigest()[:16]
    path = cache_dir / f"activations-{key}.npz"
    data = dict(np.load(path, allow_pickle=False)) if path.exists() else {}
    wanted = [name for split in SPLITS for name in (split, f"{split}-flipped", f"{split}-labels")]
    if all(name in data for name in wanted):
        print(f"activations read from {path}", flush=True)
        return data
    session, tap = stem_session(weights, threads)
    for split in SPLITS:
        pixels, labels = read_photos(examples_uri, split)
        data[f"{split}-labels"] = np.array(labels)
        for name, images in ((split, pixels), (f"{split}-flipped", [p[:, ::-1] for p in pixels])):
            if name not in data:
                t0 = time.time()
                data[name] = stem_activations(session, tap, images)
                print(f"{name}: {len(images)} photos -> {data[name].shape} in {time.time() - t0:.0f} s", flush=True)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(path, **data)
    return data


# ---- the top of the network in tf_keras --------------------------------------------------
def folded(weights: dict, conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
    """(torch-layout kernel, bias) with batch norm folded, as the ONNX graph folds it."""
    w = weights[f"{conv}.weight"].astype(np.float64)
    scale = weights[f"{bn}.weight"].astype(np.float64) / np.sqrt(
        weights[f"{bn}.running_var"].astype(np.float64) + efficientnet_lite0.BN_EPS)
    bias = weights[f"{bn}.bias"].astype(np.float64) - weights[f"{bn}.running_mean"].astype(np.float64) * scale
    return (w * scale[:, None, None, None]).astype(np.float32), bias.astype(np.float32)


def build_top(weights: dict, trainable: str):
    """tf_keras layers block 15 + head conv + pool, pretrained; `trainable` in
    {"none", "head", "block+head"}. -> (block model [7,7,192]->[7,7,320], head model
    [7,7,320]->[1280])."""
    import tf_keras as keras

    stage = efficientnet_lite0.LITE0_STAGES[-1]
    hidden = stage.channels_in * stage.expand
    inp = keras.Input((7, 7, stage.channels_in))
    w, b = folded(weights, f"{TAP_BLOCK}._expand_conv", f"{TAP_BLOCK}._bn0")
    expand = keras.layers.Conv2D(hidden, 1, name="expand")
    x = keras.layers.ReLU(6.0)(expand(inp))
    depthwise = keras.layers.DepthwiseConv2D(stage.kernel, padding="same", name="depthwise")
    x = keras.layers.ReLU(6.0)(depthwise(x))
    project = keras.layers.Conv2D(stage.channels_out, 1, name="project")
    block = keras.Model(inp, project(x), name="block15")
    expand.set_weights([np.transpose(w, (2, 3, 1, 0)), b])
    w, b = folded(weights, f"{TAP_BLOCK}._depthwise_conv", f"{TAP_BLOCK}._bn1")
    depthwise.set_weights([np.transpose(w, (2, 3, 0, 1)), b])
    w, b = folded(weights, f"{TAP_BLOCK}._project_conv", f"{TAP_BLOCK}._bn2")
    project.set_weights([np.transpose(w, (2, 3, 1, 0)), b])

    head_in = keras.Input((7, 7, stage.channels_out))
    conv = keras.layers.Conv2D(efficientnet_lite0.FEATURES, 1, name="head_conv")
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.ReLU(6.0)(conv(head_in)))
    head = keras.Model(head_in, pooled, name="head")
    w, b = folded(weights, "_conv_head", "_bn1")
    conv.set_weights([np.transpose(w, (2, 3, 1, 0)), b])
    block.trainable = trainable == "block+head"
    head.trainable = trainable in ("head", "block+head")
    return block, head


def feature_maps(head, x: np.ndarray, batch: int = 256) -> np.ndarray:
    """The last block's outputs -> the frozen network's last feature map [n, 7, 7, 1280]
    (the head conv and its ReLU6, before the pool)."""
    import tensorflow as tf

    conv = head.get_layer("head_conv")
    return np.concatenate([tf.nn.relu6(conv(x[i:i + batch].astype(np.float32))).numpy()
                           for i in range(0, len(x), batch)])


def pool_feature_map(maps: np.ndarray, kind: str) -> np.ndarray:
    """[n, 7, 7, C] -> [n, D] photo features pooled as `kind` (one of POOLINGS)."""
    if kind == "gap":
        return maps.mean(axis=(1, 2))
    if kind == "gap+gmp":
        return np.concatenate([maps.mean(axis=(1, 2)), maps.max(axis=(1, 2))], axis=1)
    if kind == "gem3":  # the activations are >= 0 (ReLU6)
        return np.cbrt((maps.astype(np.float64) ** 3).mean(axis=(1, 2))).astype(np.float32)
    if kind == "grid2":
        return np.concatenate([maps[:, a:a + 4, b:b + 4].mean(axis=(1, 2)) for a in (0, 3) for b in (0, 3)], axis=1)
    if kind == "gap+grid2":
        return np.concatenate([pool_feature_map(maps, "gap"), pool_feature_map(maps, "grid2")], axis=1)
    raise ValueError(f"unknown pooling {kind!r}; choose one of {POOLINGS}")


def compare_poolings(head, frozen: dict, y_train: np.ndarray, classes: Sequence[str], calib_truth: Sequence[str],
                     kinds: Sequence[str], seeds: Sequence[int], epochs: int, dropout: float
                     ) -> list[tuple[str, int, int, float, float]]:
    """Per pooling and seed: (kind, features, seed, calibration leaf accuracy, mirror-averaged)
    of the frozen softmax trained on `frozen["train"]` (the last block's outputs of main's
    train set, mirrored copies included unless --no-flip; labels `y_train`), its features
    standardised on train."""
    maps = {name: feature_maps(head, x) for name, x in frozen.items()}
    rows = []
    for kind in kinds:
        x = pool_feature_map(maps["train"], kind)
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
        calib = (pool_feature_map(maps["calibration"], kind) - mean) / std
        calib_flipped = (pool_feature_map(maps["calibration-flipped"], kind) - mean) / std
        for seed in seeds:
            model = train_softmax((x - mean) / std, y_train, len(classes), epochs, dropout, seed)
            plain = model.predict(calib, verbose=0)
            averaged = plain + model.predict(calib_flipped, verbose=0)
            rows.append((kind, x.shape[1], seed, leaf_accuracy(plain, classes, calib_truth),
                         leaf_accuracy(averaged, classes, calib_truth)))
            print(f"{kind} (seed {seed}): {rows[-1][3]:.4f}, mirror-averaged {rows[-1][4]:.4f}", flush=True)
    return rows


def predict_batches(model, x: np.ndarray, batch: int = 256) -> np.ndarray:
    return np.concatenate([model(x[i:i + batch].astype(np.float32), training=False).numpy()
                           for i in range(0, len(x), batch)])


def leaf_accuracy(logits: np.ndarray, classes: Sequence[str], truth: Sequence[str]) -> float:
    predicted = np.asarray(classes)[np.argmax(logits, axis=1)]
    return float(np.mean(predicted == np.asarray(truth)))


def train_softmax(features: np.ndarray, y: np.ndarray, n_classes: int, epochs: int, dropout: float, seed: int):
    """Softmax layer (with dropout) on fixed features; its weights start the fine-tuning."""
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((features.shape[1],))
    out = keras.layers.Dense(n_classes, name="classifier")(keras.layers.Dropout(dropout)(inp))
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(features, y, batch_size=64, epochs=epochs, verbose=0, shuffle=True)
    return model


def fine_tune(block, head, classifier, x_train, y_train, x_calib, x_calib_flipped, calib_truth, classes,
              epochs: int, lr: float, dropout: float, seed: int) -> tuple[list[tuple], np.ndarray]:
    """Trains [block ->] head -> pool -> dropout -> classifier end to end; -> ([(epoch,
    calibration leaf accuracy, with the mirrored photo's logits averaged in, seconds)], the
    last epoch's calibration logits averaged over photo and mirror)."""
    import tf_keras as keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input(x_train.shape[1:])
    features = head(block(inp) if block.trainable else inp)
    out = classifier.get_layer("classifier")(keras.layers.Dropout(dropout)(features))
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(lr), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history, logits = [], None
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        model.fit(x_train, y_train, batch_size=64, epochs=1, verbose=0, shuffle=True)
        seconds = time.time() - t0
        plain = predict_batches(model, x_calib)
        logits = (plain + predict_batches(model, x_calib_flipped)) / 2
        history.append((epoch, leaf_accuracy(plain, classes, calib_truth), leaf_accuracy(logits, classes, calib_truth),
                        seconds))
        print(f"  epoch {epoch}: calibration leaf accuracy {history[-1][1]:.4f}, mirror-averaged "
              f"{history[-1][2]:.4f} ({seconds:.0f} s)", flush=True)
    return history, logits


def confusions(logits: np.ndarray, classes: Sequence[str], truth: Sequence[str], top: int = 8) -> list[str]:
    """The most frequent (truth -> predicted) leaf confusions."""
    from collections import Counter

    predicted = np.asarray(classes)[np.argmax(logits, axis=1)]
    pairs = Counter((t, p) for t, p in zip(truth, predicted) if t != p)
    return [f"{n} x {t} -> {p}" for (t, p), n in pairs.most_common(top)]


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline-root", type=Path, default=Path("pipelines/fashion"))
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/image-finetune"))
    parser.add_argument("--no-flip", dest="flip", action="store_false", help="no mirrored train copies")
    parser.add_argument("--variants", nargs="*", default=["head", "block+head"], choices=["head", "block+head"])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--softmax-epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--probe-c", type=float, nargs="+", default=[0.1, 1.0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pooling", nargs="+", choices=POOLINGS,
                        help="compare these poolings of the frozen feature map instead (step 4)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 11], help="the seeds of --pooling")
    args = parser.parse_args(argv)

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from bench.quality import choose_c, embedding_probe
    from schema.encoders import get_image_encoder
    from schema.encoders.torch_checkpoint import load_state_dict

    t_start = time.time()
    weights = load_state_dict(efficientnet_lite0.weights_path())
    uri = newest_examples_uri(args.pipeline_root)
    data = load_or_extract(uri, args.cache_dir, weights, args.threads)
    plain_labels = list(data["train-labels"])
    x_train, train_labels = data["train"], plain_labels
    if args.flip:
        x_train = np.concatenate([x_train, data["train-flipped"]])
        train_labels = plain_labels + plain_labels
    x_calib, x_calib_flipped, calib_truth = data["calibration"], data["calibration-flipped"], \
        list(data["calibration-labels"])
    classes = sorted(set(plain_labels))
    index = {c: i for i, c in enumerate(classes)}
    y_train = np.array([index[c] for c in train_labels])
    print(f"{len(plain_labels)} train photos ({len(x_train)} with mirrored copies), "
          f"{len(calib_truth)} calibration, {len(classes)} leaf classes; "
          f"{time.time() - t_start:.0f} s so far", flush=True)

    # frozen pooled features: the Keras top must reproduce the ONNX encoder's embeddings
    block, head = build_top(weights, "none")
    frozen = {name: predict_batches(block, x).astype(np.float16)
              for name, x in (("train", x_train), ("calibration", x_calib), ("calibration-flipped", x_calib_flipped))}
    pooled = {name: predict_batches(head, x) for name, x in frozen.items()}
    pixels, _ = read_photos(uri, "calibration")
    reference = get_image_encoder().embed_pixels(np.stack(pixels[:8]))
    gap = float(np.max(np.abs(reference - pooled["calibration"][:8])))
    print(f"Keras top vs ONNX encoder on 8 calibration photos: max |difference| {gap:.4f} "
          f"(float16 activations)", flush=True)
    if gap > 0.05:
        raise SystemExit(f"error: the Keras top does not reproduce the encoder (max |difference| {gap:.4f})")
    if args.pooling:
        rows = compare_poolings(head, frozen, y_train, classes, calib_truth, args.pooling, args.seeds,
                                args.softmax_epochs, args.dropout)
        print("\n| pooling | features | seed | calibration leaf accuracy | mirror-averaged |")
        print("|---|---|---|---|---|")
        for kind, width, seed, acc, averaged_acc in rows:
            print(f"| {kind} | {width:,} | {seed} | {acc:.4f} | {averaged_acc:.4f} |")
        print(f"\ntotal {time.time() - t_start:.0f} s")
        return 0

    results = []  # (name, accuracy, mirror-averaged, best epoch mirror-averaged, seconds)
    n_plain = len(plain_labels)
    t0 = time.time()
    c, probe = choose_c(lambda c: embedding_probe(pooled["train"][:n_plain], plain_labels, c),
                        pooled["calibration"], calib_truth, args.probe_c)
    acc = float(np.mean(np.asarray(probe(pooled["calibration"])) == np.asarray(calib_truth)))
    results.append((f"probe: LR on frozen embeddings (C={c:g}, no mirrored copies)", acc, None, None,
                    time.time() - t0))
    print(f"probe: {acc:.4f} ({time.time() - t0:.0f} s)", flush=True)

    t0 = time.time()
    softmax = train_softmax(pooled["train"], y_train, len(classes), args.softmax_epochs, args.dropout, args.seed)
    plain = softmax.predict(pooled["calibration"], verbose=0)
    averaged = (plain + softmax.predict(pooled["calibration-flipped"], verbose=0)) / 2
    results.append((f"frozen-softmax ({args.softmax_epochs} epochs)", leaf_accuracy(plain, classes, calib_truth),
                    leaf_accuracy(averaged, classes, calib_truth), None, time.time() - t0))
    print(f"frozen-softmax: {results[-1][1]:.4f}, mirror-averaged {results[-1][2]:.4f} "
          f"({time.time() - t0:.0f} s)", flush=True)
    last_logits = averaged

    for variant in args.variants:
        print(f"{variant}:", flush=True)
        block, head = build_top(weights, variant)
        classifier = train_softmax(pooled["train"], y_train, len(classes), args.softmax_epochs, args.dropout,
                                   args.seed)
        if variant == "head":
            inputs = (frozen["train"], frozen["calibration"], frozen["calibration-flipped"])
        else:
            inputs = (x_train, x_calib, x_calib_flipped)
        history, last_logits = fine_tune(block, head, classifier, inputs[0], y_train, inputs[1], inputs[2],
                                         calib_truth, classes, args.epochs, args.lr, args.dropout, args.seed)
        results.append((f"{variant} (softmax start, then {args.epochs} epochs at lr {args.lr:g})", history[-1][1],
                        history[-1][2], max(h[2] for h in history), sum(h[3] for h in history)))

    print("\nmost frequent confusions of the last variant (mirror-averaged):")
    for line in confusions(last_logits, classes, calib_truth):
        print(f"  {line}")
    print("\n| variant | calibration leaf accuracy | mirror-averaged | best epoch, mirror-averaged | training s |")
    print("|---|---|---|---|---|")
    for name, acc, averaged_acc, best, seconds in results:
        cells = [f"{v:.4f}" if v is not None else "-" for v in (acc, averaged_acc, best)]
        print(f"| {name} | {' | '.join(cells)} | {seconds:.0f} |")
    print(f"\ntotal {time.time() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
