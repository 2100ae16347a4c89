"""MiniLM on onnxruntime (index/minilm_onnx.py, index/embed.py): the int8 export built offline
from the packaged weights, its agreement with sentence-transformers, the filling's use of it, and
the encoder's name recorded with the vectors so that another encoder's are never mixed in."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import pytest

from conftest import make_repo
from direng_kernel.index import embed
from direng_kernel.index.vectors import ENCODER_META, recorded_encoder
from direng_kernel.workbench import Workbench

ROOT = Path(__file__).resolve().parents[1]


def _real_texts(n: int = 48) -> list[str]:
    """Real code and prose of this repository, as the index chunks it: short and long."""
    texts = []
    for path in sorted((ROOT / "direng_kernel" / "index").glob("*.py")):
        lines = path.read_text().splitlines()
        texts += ["\n".join(lines[i:i + 30]) for i in range(0, len(lines), 60)]
    texts += ["warm up", "how are search results from several retrievers combined?", ""]
    return texts[:n - 3] + texts[-3:]


@pytest.mark.slow
def test_the_int8_export_builds_offline_from_the_packaged_weights_and_agrees_with_torch(tmp_path, monkeypatch):
    from direng_kernel.index.minilm_onnx import FILES, OnnxEncoder, export

    def no_network(self, address):  # a download would have to connect somewhere
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(f"network use during the export: {address}")
        return real_connect(self, address)

    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", no_network)
    target = export(Path(embed.minilm_path()), tmp_path / "minilm-onnx")
    monkeypatch.setattr(socket.socket, "connect", real_connect)
    meta = json.loads((target / "export.json").read_text())
    assert meta["source"] == embed.minilm_path()
    assert meta["fused"]["Attention"] == 6  # onnxruntime's fused kernels, one per layer
    assert not list(tmp_path.glob(".minilm-onnx.*"))  # no half-built folder left beside it

    texts = _real_texts()
    reference = embed.embed_dense(texts, encoder=embed.encoder_name("torch"))
    tokenizer = Path(embed.minilm_path()) / "tokenizer.json"
    for precision, mean_floor, min_floor in (("fp32", 0.9999, 0.999), ("int8", 0.99, 0.97)):
        enc = OnnxEncoder(target / FILES[precision], tokenizer, f"test-{precision}")
        vecs = enc.encode(texts, batch_size=8)  # several batches of mixed lengths, padded
        assert vecs.shape == reference.shape
        assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
        cos = (vecs * reference).sum(axis=1)
        assert cos.mean() >= mean_floor and cos.min() >= min_floor, (precision, cos.mean(), cos.min())
        # fp32: batching does not change a text's vector. int8 quantizes activations per batch, so
        # a text's vector moves a little with its batch companions (not beyond the torch agreement).
        one = enc.encode([texts[5]], batch_size=1)[0]
        if precision == "fp32":
            assert np.allclose(one, vecs[5], atol=1e-5)
        else:
            assert float(one @ vecs[5]) >= 0.99


def test_a_bad_encoder_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(embed.ENCODER_ENV, "gpu-please")
    with pytest.raises(embed.EncoderUnavailable, match="auto or one of onnx-int8"):
        embed.preferred_kind()
    with pytest.raises(embed.EncoderUnavailable, match="not a model of this installation"):
        embed.dense_encoder("minilm-onnx-int8-000000000000")


def test_a_later_export_recipe_names_other_vectors(monkeypatch):
    from direng_kernel.index import minilm_onnx

    monkeypatch.setattr(minilm_onnx, "EXPORT_RECIPE", 1)
    first = embed.encoder_name("onnx-int8")
    assert first == f"minilm-onnx-int8-{embed.weights_key()}"  # recipe 1's stores kept the name they had
    monkeypatch.setattr(minilm_onnx, "EXPORT_RECIPE", 2)
    later = embed.encoder_name("onnx-int8")
    assert later == f"minilm-onnx-int8-r2-{embed.weights_key()}" and embed._kind_of(later) == "onnx-int8"
    assert embed._kind_of(first) is None  # vectors of recipe 1 are another encoder's: filled again
    assert embed.encoder_name("torch") == f"minilm-torch-{embed.weights_key()}"


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """The sample repository, indexed with every MiniLM vector filled by the default encoder."""
    wb = Workbench(make_repo(tmp_path_factory.mktemp("onnx") / "repo"))
    wb.index(dense=True)
    yield wb
    wb.close()


@pytest.mark.slow
def test_the_filling_uses_the_int8_encoder_and_records_its_name(filled):
    assert embed.preferred_kind() == "onnx-int8"  # onnxruntime is installed: it is the default
    store = filled.store
    name = embed.encoder_name("onnx-int8")
    assert store.get_meta(ENCODER_META) == name == recorded_encoder(store)
    counts = store.counts()
    assert counts["dense_chunks"] == counts["chunks"] > 0
    chunk = next(c for c in store.chunks() if c.symbol)
    held = np.asarray(filled.vectors().col.get(ids=[chunk.id], include=["embeddings"])["embeddings"][0])
    # int8 quantizes activations per batch: the vector embedded alone is close, not equal
    assert float(held @ embed.embed_dense([chunk.text], encoder=name)[0]) >= 0.99
    hits = filled.search("charge a credit card through the payment gateway", k=3, mode="dense")
    assert hits and all("dense" in h.sources for h in hits)


@pytest.mark.slow
def test_vectors_of_another_encoder_are_detected_and_filled_again(filled, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "repo"
    shutil.copytree(filled.root, root, ignore=shutil.ignore_patterns(".direng"))
    monkeypatch.setenv(embed.ENCODER_ENV, "torch")
    wb = Workbench(root)
    wb.index(dense=True)
    store = wb.store
    torch_name = embed.encoder_name("torch")
    assert store.get_meta(ENCODER_META) == torch_name
    query = "charge a credit card through the payment gateway"
    by_torch = [(h.path, h.symbol) for h in wb.search(query, k=5, mode="dense")]

    # A store filled before encoders were named: its vectors are taken for torch's, not trusted blindly.
    store.set_meta(ENCODER_META, None)
    assert recorded_encoder(store) == torch_name

    # A process whose encoder is the int8 one: queries still use torch (the vectors' encoder) ...
    monkeypatch.setenv(embed.ENCODER_ENV, "onnx-int8")
    wb2 = Workbench(root)
    assert [(h.path, h.symbol) for h in wb2.search(query, k=5, mode="dense")] == by_torch
    # ... until its filling drops torch's vectors and embeds every chunk again with its own.
    chunk = next(c for c in wb2.store.chunks() if c.symbol)
    before = np.asarray(wb2.vectors().col.get(ids=[chunk.id], include=["embeddings"])["embeddings"][0])
    assert np.allclose(before, embed.embed_dense([chunk.text], encoder=torch_name)[0], atol=1e-4)
    assert wb2.fill_dense() == wb2.store.counts()["chunks"]
    int8 = embed.encoder_name("onnx-int8")
    assert wb2.store.get_meta(ENCODER_META) == int8
    held = np.asarray(wb2.vectors().col.get(ids=[chunk.id], include=["embeddings"])["embeddings"][0])
    assert float(held @ embed.embed_dense([chunk.text], encoder=int8)[0]) >= 0.99
    assert not np.allclose(held, before, atol=1e-4)  # int8's vector replaced torch's
    assert wb2.vectors().count() == wb2.store.counts()["chunks"]  # none of torch's left beside them
    assert wb2.search(query, k=5, mode="dense")

    # Vectors of an encoder this installation lacks: dense search leaves them out, hybrid still answers.
    wb2.store.set_meta(ENCODER_META, "minilm-onnx-int8-000000000000")
    assert wb2.searcher.dense(query) == []
    assert wb2.search(query, k=3)
    wb.close()
    wb2.close()


@pytest.mark.slow
def test_the_filling_keeps_the_stores_encoder_unless_the_user_names_another(filled, tmp_path, monkeypatch):
    """Two processes preferring different encoders must not drop each other's vectors in turn."""
    import shutil

    root = tmp_path / "repo"
    shutil.copytree(filled.root, root, ignore=shutil.ignore_patterns(".direng"))
    fp32, int8 = embed.encoder_name("onnx-fp32"), embed.encoder_name("onnx-int8")
    monkeypatch.setenv(embed.ENCODER_ENV, "onnx-fp32")
    wb = Workbench(root)
    wb.index(dense=True)
    assert wb.store.get_meta(ENCODER_META) == fp32
    chunk = next(c for c in wb.store.chunks() if c.symbol)
    held = np.asarray(wb.vectors().col.get(ids=[chunk.id], include=["embeddings"])["embeddings"][0])
    wb.close()

    # `auto` would pick int8 for an empty store; this one is fp32's: new chunks are filled by fp32.
    monkeypatch.delenv(embed.ENCODER_ENV)
    assert embed.preferred_kind() == "onnx-int8"
    (root / "refunds.py").write_text("def refund_order(order):\n    return order.total\n")
    wb = Workbench(root)
    wb.index()
    counts = wb.store.counts()
    new = counts["chunks"] - counts["dense_chunks"]
    assert 0 < new <= 2 < counts["chunks"]  # the new file's chunks (the function, the file summary)
    assert wb.fill_dense() == new  # only those: nothing dropped
    assert wb.store.get_meta(ENCODER_META) == fp32
    assert wb.store.counts()["dense_chunks"] == wb.store.counts()["chunks"] == wb.vectors().count()
    again = np.asarray(wb.vectors().col.get(ids=[chunk.id], include=["embeddings"])["embeddings"][0])
    assert np.array_equal(again, held)
    wb.close()

    # Named by the user, the other encoder takes over and fills everything again.
    monkeypatch.setenv(embed.ENCODER_ENV, "onnx-int8")
    wb = Workbench(root)
    assert wb.fill_dense() == wb.store.counts()["chunks"]
    assert wb.store.get_meta(ENCODER_META) == int8
    wb.close()


def test_the_filling_takes_symbols_first_then_the_rest_shortest_first(tmp_path, monkeypatch):
    wb = Workbench(make_repo(tmp_path / "repo"))
    wb.index()
    store = wb.store
    pending = store.chunks_without_dense(10_000)
    assert len(pending) == store.counts()["chunks"]
    keys = [(c.symbol is None, len(c.text)) for c in pending]
    assert keys == sorted(keys)
    assert pending[0].symbol is not None and pending[-1].symbol is None
    plan = store.db.execute("EXPLAIN QUERY PLAN SELECT id FROM chunks WHERE dense=0 "
                            "ORDER BY symbol IS NULL, length(text) LIMIT 32").fetchall()
    assert "chunks_pending" in str(plan) and "TEMP B-TREE" not in str(plan)  # no sort of every pending chunk
    wb.close()
