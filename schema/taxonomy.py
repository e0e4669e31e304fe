"""The taxonomy: the only mapping between category paths and class ids.

Built once from the training split (by the TaxonomyGen component), stored as JSON in a
TFX artifact, and read by Transform, the Trainer, the thresholds and `categorize`; none of
them rebuilds it. Nodes are identified by their full path, because names repeat across
parents (`Shorts` under `Bottomwear` and under `Loungewear and Nightwear`).

Class layout per level, which the model's heads follow:
- level 1: one class per top-level node;
- level k >= 2: class 0 is STOP ("the product's path ends at the parent"), then one
  class per node. STOP is allowed only under parents that have products ending there.
"""
from __future__ import annotations

import collections
import dataclasses
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from schema.features import PATH_SEPARATOR

STOP = "<stop>"
FILE_NAME = "taxonomy.json"
# The custom_config key under which the taxonomy-aware Transform and Trainer executors
# (components/taxonomy_aware) pass the taxonomy artifact's location to preprocessing_fn
# and run_fn.
TAXONOMY_URI_CONFIG = "taxonomy_uri"


def taxonomy_uri(custom_config: Mapping[str, Any] | str | None) -> str:
    """The taxonomy artifact's location from a component's custom_config (dict or JSON)."""
    if isinstance(custom_config, str):
        custom_config = json.loads(custom_config)
    if not custom_config or TAXONOMY_URI_CONFIG not in custom_config:
        raise ValueError("custom_config has no taxonomy_uri: run through the taxonomy-aware components")
    return custom_config[TAXONOMY_URI_CONFIG]


def join_path(levels: Sequence[str]) -> str:
    return PATH_SEPARATOR.join(levels)


def split_path(path: str) -> list[str]:
    return path.split(PATH_SEPARATOR) if path else []


def ancestors(path: str) -> list[str]:
    """The path and all its prefixes: the label set of hierarchical precision and recall."""
    levels = split_path(path)
    return [join_path(levels[: i + 1]) for i in range(len(levels))]


@dataclasses.dataclass
class Level:
    classes: list[str]  # full paths; at levels >= 2 index 0 is STOP
    parents: list[int]  # class index of the parent at the level above (-1 for level 1 / STOP)
    counts: list[int]  # training products whose path passes through the class (STOP: ends above)


@dataclasses.dataclass
class Taxonomy:
    levels: list[Level]
    min_count: int
    unplaced: int = 0  # training products whose top-level category was too rare to keep

    # ---- building -------------------------------------------------------------------
    @classmethod
    def build(cls, paths: Iterable[Sequence[str]], max_depth: int, min_count: int = 1) -> "Taxonomy":
        """Builds the tree from training paths, merging nodes rarer than `min_count` into
        their parent (their products keep the shallower path). A top-level node that rare
        has no parent to merge into: its products stay unplaced (counted in `unplaced`),
        which on noisy catalogs is where a product name was put in the category column."""
        through = collections.Counter()  # full path -> products through it
        for levels in paths:
            levels = list(levels)[:max_depth]
            for i in range(len(levels)):
                through[join_path(levels[: i + 1])] += 1
        kept = {p for p, n in through.items() if n >= min_count}
        # A node survives only when every ancestor survives.
        kept = {p for p in kept if all(a in kept for a in ancestors(p))}
        depth = max((len(split_path(p)) for p in kept), default=0)
        if depth == 0:
            raise ValueError("cannot build a taxonomy from no labelled products")
        out: list[Level] = []
        for k in range(1, depth + 1):
            nodes = sorted(p for p in kept if len(split_path(p)) == k)
            if k == 1:
                parent_index: dict[str, int] = {}
                out.append(Level(nodes, [-1] * len(nodes), [through[p] for p in nodes]))
                continue
            above = out[-1]
            parent_index = {p: i for i, p in enumerate(above.classes)}
            parents = [parent_index[join_path(split_path(p)[:-1])] for p in nodes]
            # Products stopping here = through(parent) - sum(through(kept children)).
            stop = sum(
                above.counts[i] - sum(through[c] for c in nodes if parent_index[join_path(split_path(c)[:-1])] == i)
                for i in range(len(above.classes))
                if above.classes[i] != STOP
            )
            out.append(Level([STOP] + nodes, [-1] + parents, [stop] + [through[p] for p in nodes]))
        unplaced = sum(n for p, n in through.items() if len(split_path(p)) == 1 and p not in kept)
        return cls(out, min_count, unplaced)

    # ---- lookups --------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self.levels)

    def num_classes(self, level: int) -> int:
        return len(self.levels[level - 1].classes)

    def index(self, level: int) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.levels[level - 1].classes)}

    def nodes(self) -> set[str]:
        """Every node's full path (STOP excluded): what a category path must be for a model
        of this taxonomy to be able to output it."""
        return {path for level in self.levels for path in level.classes if path != STOP}

    def resolve(self, levels: Sequence[str]) -> list[str]:
        """The effective path of a label: the deepest prefix that is a node of the tree.
        Returns [] when even the top level is unknown (a category unseen in training)."""
        known = self.nodes()
        out: list[str] = []
        for i in range(min(len(levels), self.depth)):
            prefix = join_path(levels[: i + 1])
            if prefix not in known:
                break
            out = list(levels[: i + 1])
        return out

    def label_ids(self, levels: Sequence[str]) -> list[int]:
        """Class id per level for a label (after `resolve`): node ids down to the
        product's depth, STOP (0) just below it, -1 (masked) further down. Where no
        training product ends at the parent (the product's deeper node was unseen), the
        level below is masked instead of STOP."""
        path = self.resolve(levels)
        ids: list[int] = []
        for k in range(1, self.depth + 1):
            if k <= len(path):
                ids.append(self.index(k)[join_path(path[:k])])
            elif k == len(path) + 1 and path and self.child_mask(k)[ids[-1], 0] > 0:
                ids.append(0)  # STOP, where training products end at this parent
            else:
                ids.append(-1)
        return ids

    def child_mask(self, level: int) -> np.ndarray:
        """[classes at level-1, classes at level] 0/1: which children a parent may have.
        STOP is a valid child only where training products end at the parent."""
        lvl = self.levels[level - 1]
        above = self.levels[level - 2]
        mask = np.zeros((len(above.classes), len(lvl.classes)), dtype=np.float32)
        for child, parent in enumerate(lvl.parents):
            if child > 0:
                mask[parent, child] = 1.0
        # STOP under a parent: products through the parent minus those through its children.
        through_children = np.zeros(len(above.classes))
        for child, parent in enumerate(lvl.parents):
            if child > 0:
                through_children[parent] += lvl.counts[child]
        for p in range(len(above.classes)):
            if above.classes[p] == STOP:
                mask[p, 0] = 1.0  # once stopped, stay stopped
            elif above.counts[p] - through_children[p] > 0 or through_children[p] == 0:
                mask[p, 0] = 1.0
        return mask

    def leaves(self) -> list[str]:
        """Paths a product can end at (nodes with no child or with a STOP child)."""
        out = []
        for k in range(1, self.depth + 1):
            stops = self.child_mask(k + 1)[:, 0] if k < self.depth else None  # once per level
            for i, path in enumerate(self.levels[k - 1].classes):
                if path == STOP:
                    continue
                if stops is None or stops[i] > 0:
                    out.append(path)
        return out

    # ---- persistence ----------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "min_count": self.min_count,
            "unplaced": self.unplaced,
            "levels": [dataclasses.asdict(l) for l in self.levels],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Taxonomy":
        return cls([Level(**l) for l in data["levels"]], data["min_count"], data.get("unplaced", 0))

    def save(self, directory: str | Path) -> Path:
        import tensorflow as tf

        path = Path(directory) / FILE_NAME
        # An orchestrator may hand over an output folder that does not exist yet (KFP and
        # Vertex AI create none on a local or freshly mounted root).
        tf.io.gfile.makedirs(str(directory))
        with tf.io.gfile.GFile(str(path), "w") as handle:
            handle.write(json.dumps(self.to_dict(), ensure_ascii=False, indent=1))
        return path

    @classmethod
    def load(cls, directory_or_file: str | Path) -> "Taxonomy":
        import tensorflow as tf

        path = str(directory_or_file)
        if not path.endswith(".json"):
            path = str(Path(path) / FILE_NAME)
        with tf.io.gfile.GFile(path, "r") as handle:
            return cls.from_dict(json.loads(handle.read()))

    def summary(self) -> str:
        sizes = " / ".join(str(len([c for c in l.classes if c != STOP])) for l in self.levels)
        return f"{self.depth} levels, {sizes} nodes, {len(self.leaves())} leaves, {self.unplaced} unplaced"
