"""The image network without torch: the checkpoint reader, and the ONNX Runtime encoder's
features against the PyTorch encoder it replaced.

The reference features were computed by the PyTorch encoder (bench/torch_reference.py,
which says how) and stored in tests/fixtures/efficientnet_lite0_torch_features.npz, so this
runs where torch is not installed."""
from __future__ import annotations

import hashlib
import io
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from schema import encoders
from schema.encoders import efficientnet_lite0, torch_checkpoint
from tests.conftest import ROOT, shared_catalog

FIXTURE = Path(__file__).parent / "fixtures" / "efficientnet_lite0_torch_features.npz"
TOLERANCE = 1e-4  # features are O(1) (max about 5); float rounding differs by about 1e-5


def _generated_images() -> np.ndarray:
    from bench.torch_reference import generated_images

    return generated_images()


def test_checkpoint_reader_reads_every_tensor_of_the_packaged_weights():
    weights = torch_checkpoint.load_state_dict(efficientnet_lite0.weights_path())
    assert len(weights) == 296
    assert weights["_conv_stem.weight"].shape == (32, 3, 3, 3) and weights["_conv_stem.weight"].dtype == np.float32
    assert weights["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert weights["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert weights["_fc.weight"].shape == (1000, 1280)
    assert weights["_bn0.num_batches_tracked"].dtype == np.int64 and weights["_bn0.num_batches_tracked"].shape == ()
    assert np.all(weights["_bn1.running_var"] > 0) and np.isfinite(weights["_fc.weight"]).all()


def _legacy_checkpoint(state_pickle: bytes) -> bytes:
    header = b"".join(pickle.dumps(v, protocol=2) for v in (
        torch_checkpoint.MAGIC_NUMBER, torch_checkpoint.PROTOCOL_VERSION, {"little_endian": True}))
    return header + state_pickle + pickle.dumps([], protocol=2)


class _Shell:
    def __reduce__(self):
        import os

        return os.system, ("touch should-not-exist",)


def test_checkpoint_reader_refuses_anything_but_tensors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pth"
    evil.write_bytes(_legacy_checkpoint(pickle.dumps({"w": _Shell()}, protocol=2)))
    with pytest.raises(torch_checkpoint.CheckpointError, match="refusing to load posix.system"):
        torch_checkpoint.load_state_dict(evil)
    assert not (tmp_path / "should-not-exist").exists()

    not_tensor = tmp_path / "number.pth"
    not_tensor.write_bytes(_legacy_checkpoint(pickle.dumps({"w": 3}, protocol=2)))
    with pytest.raises(torch_checkpoint.CheckpointError, match="'w' is not a tensor"):
        torch_checkpoint.load_state_dict(not_tensor)

    zipped = tmp_path / "new.pth"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("archive/data.pkl", b"")
    with pytest.raises(torch_checkpoint.CheckpointError, match="zip checkpoint"):
        torch_checkpoint.load_state_dict(zipped)

    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(efficientnet_lite0.weights_path().read_bytes()[:200_000])
    with pytest.raises(torch_checkpoint.CheckpointError, match="ends"):
        torch_checkpoint.load_state_dict(truncated)


def test_onnx_encoder_gives_the_torch_encoders_features():
    reference = np.load(FIXTURE)
    encoder = encoders.ImageEncoder(batch_size=3)  # batches of 3: a partial last batch too
    generated = encoder.embed_pixels(_generated_images())
    np.testing.assert_allclose(generated, reference["generated_features"], rtol=0, atol=TOLERANCE)

    fashion = shared_catalog("fashion")
    if fashion is None:
        pytest.skip("../shared/datasets/fashion not available: only the generated images were compared")
    data = [(fashion / str(p)).read_bytes() for p in reference["photos"]]
    assert [hashlib.sha256(d).hexdigest() for d in data] == reference["sha256"].tolist(), "catalog photos changed"
    emb, ok = encoder.encode(data)  # decode + network, as the Embedder and categorize run it
    assert ok.all()
    np.testing.assert_allclose(emb, reference["photo_features"], rtol=0, atol=TOLERANCE)
    # equal to rounding, so cached embeddings of the PyTorch encoder stay valid under its id
    assert encoder.encoder_id == "efficientnet-lite0-avgpool:0.1.0+0.1.0:rgb224"


def test_image_encoder_runs_without_torch(tmp_path):
    """The encoder imports neither torch nor the PyTorch model package, even where they are
    installed (they are not in the lock)."""
    buf = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (80, 60), (200, 30, 30)).save(buf, format="JPEG")
    photo = tmp_path / "red.jpg"
    photo.write_bytes(buf.getvalue())
    code = (
        "import sys, pathlib\n"
        "from schema import encoders\n"
        f"emb, ok = encoders.ImageEncoder().encode([pathlib.Path({str(photo)!r}).read_bytes()])\n"
        "assert ok.all() and emb.shape == (1, 1280) and abs(emb).sum() > 0\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'efficientnet_lite_pytorch'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=300)
