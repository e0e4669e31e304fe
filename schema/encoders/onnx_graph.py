"""Building an ONNX graph node by node from packaged weights: the one helper both encoders'
graphs use (efficientnet_lite0.py, use_multilingual.py), so neither needs the framework
the weights came from at run time."""
from __future__ import annotations

import numpy as np


class OnnxGraph:
    """Nodes and initializers of a graph being built, with unique names."""

    def __init__(self):
        self.nodes: list = []
        self.initializers: list = []
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def constant(self, prefix: str, value) -> str:
        """An initializer holding `value`; -> its name."""
        from onnx import numpy_helper

        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        """A node of operator `op` with one output; -> the output's name."""
        from onnx import helper

        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out
