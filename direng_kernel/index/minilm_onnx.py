"""MiniLM on onnxruntime: an int8 export of the packaged all-MiniLM-L6-v2, built here, offline.

The export (once per machine, ~15 s; `embed.prepare_onnx`) reads the packaged weights with
transformers, traces them with torch's TorchScript exporter — eager attention, so that
onnxruntime's BERT optimizer fuses the graph into its Attention / SkipLayerNormalization /
BiasGelu kernels — and quantizes the weights of every MatMul and Attention to int8 *per output
channel* (dynamic quantization: activations are quantized per batch at run time), except each
feed-forward block's down-projection, kept fp32. Per-tensor weights lose too much (mean cosine
to the torch embeddings 0.94 on code; per channel 0.994; with the down-projections fp32 0.997).

Encoding follows sentence-transformers' recipe for this model, without torch: the model's own
fast tokenizer (special tokens, truncated to 256 tokens), mean pooling over the attention mask,
L2 normalisation. Texts are sorted by token length before batching, so each batch pads to
lengths close to its own (batches of 32 in id order pad flask's chunks to 1.66× their tokens,
sorted to 1.01×).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)
EXPORT_RECIPE = 2  # bump when the export below changes: the cache folder's name and the encoder's include it
FILES = {"fp32": "model-fp32.onnx", "int8": "model-int8.onnx"}
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
MAX_SEQ_LENGTH = 256  # sentence-transformers' max_seq_length for this model (sentence_bert_config.json)


def export(source: Path, target: Path) -> Path:
    """Write the fp32 and int8 ONNX models of the sentence-transformers folder `source` into
    `target` (built beside it, then renamed: a reader never sees half an export)."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers import optimizer
    from transformers import AutoModel

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        model = AutoModel.from_pretrained(str(source), attn_implementation="eager").eval()
        config = model.config
        # One padded row: whatever masking shortcut the traced code takes, it is the padded one.
        ids = torch.full((2, 16), 1000, dtype=torch.long)
        mask = torch.ones_like(ids)
        mask[1, 8:] = 0
        raw = tmp / "raw.onnx"
        axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUTS, "last_hidden_state")}
        with torch.no_grad():
            torch.onnx.export(_hidden_states(model), (ids, mask, torch.zeros_like(ids)), str(raw), input_names=list(INPUTS),
                              output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, dynamo=False)
        fused = optimizer.optimize_model(str(raw), model_type="bert", num_heads=config.num_attention_heads,
                                         hidden_size=config.hidden_size, opt_level=0)
        fused.save_model_to_file(str(tmp / FILES["fp32"]))
        raw.unlink()
        quiet = logging.root.manager.disable
        logging.disable(logging.INFO)  # the quantizer logs a line per tensor on the root logger
        try:
            # Each FFN's down-projection stays fp32: its input (GELU's output) has the widest range,
            # and quantizing it cost dense-only search 2.7 points of sym@5, against 0.7 without it
            # (benchmarks/int8_variants.py), for 25% more CPU per chunk.
            ffn_down = [n.name for n in onnx.load(str(tmp / FILES["fp32"])).graph.node
                        if n.op_type == "MatMul" and n.name.endswith("/output/dense/MatMul") and "attention" not in n.name]
            quantize_dynamic(str(tmp / FILES["fp32"]), str(tmp / FILES["int8"]), weight_type=QuantType.QInt8,
                             per_channel=True, op_types_to_quantize=["MatMul", "Attention"], nodes_to_exclude=ffn_down,
                             # the fused operators are outside ONNX's shape inference: their outputs are float
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        finally:
            logging.disable(quiet)
        (tmp / "export.json").write_text(json.dumps({
            "source": str(source), "recipe": EXPORT_RECIPE, "fused": fused.get_fused_operator_statistics(),
            "torch": torch.__version__, "onnx": onnx.__version__}, indent=1))
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "export.json").is_file():  # not another process's finished export
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _hidden_states(model):
    """The transformer with its token embeddings as the one output, taking keyword arguments
    (transformers 5 changed BertModel.forward's positional order)."""
    import torch

    class Hidden(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    return Hidden(model)


def _thread_nice() -> int:
    if not sys.platform.startswith("linux"):
        return 0
    try:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    except OSError:
        return 0


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class OnnxEncoder:
    """Unit-length MiniLM vectors from one of the exported models (`model_file`).

    onnxruntime's worker threads are made with its session and keep their creator's CPU
    priority; a session is therefore kept per priority of the calling thread, so the refresh
    daemon's lowest-priority filling never runs on a query's normal-priority workers (nor the
    other way round). Workers sleep rather than spin between runs: the machine is shared.
    """

    def __init__(self, model_file: Path, tokenizer_file: Path, name: str, max_length: int = MAX_SEQ_LENGTH):
        from tokenizers import Tokenizer

        self.model_file = Path(model_file)
        self.name = name
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        padding = tokenizer.padding  # the file's own (fixed length 128): we pad each batch ourselves
        self.pad_id = int(padding["pad_id"]) if padding else 0
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length)
        self.tokenizer = tokenizer
        self._tokenizer_lock = threading.Lock()  # the Rust tokenizer is not re-entrant
        self._sessions: dict[int, object] = {}
        self._sessions_lock = threading.Lock()

    def _session(self):
        nice = _thread_nice()
        with self._sessions_lock:
            session = self._sessions.get(nice)
            if session is None:
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = _cpus()
                options.inter_op_num_threads = 1
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                session = ort.InferenceSession(str(self.model_file), options, providers=["CPUExecutionProvider"])
                self._sessions[nice] = session
            return session

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), np.float32)
        with self._tokenizer_lock:
            ids = [e.ids for e in self.tokenizer.encode_batch(list(texts))]
        session = self._session()
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: np.ndarray | None = None
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            width = max(len(ids[i]) for i in rows)
            input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                input_ids[r, :len(ids[i])] = ids[i]
                mask[r, :len(ids[i])] = 1
            hidden = session.run(None, {"input_ids": input_ids, "attention_mask": mask,
                                        "token_type_ids": np.zeros_like(input_ids)})[0]
            pooled = mean_pool(hidden, mask)
            if out is None:
                out = np.empty((len(texts), pooled.shape[1]), np.float32)
            out[rows] = pooled
        return out


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' Pooling(mean) then Normalize: the mask-weighted mean of the token
    embeddings (count clamped at 1e-9), divided by its L2 norm (clamped at 1e-12, as F.normalize)."""
    weights = mask[..., None].astype(np.float32)
    summed = (hidden.astype(np.float32) * weights).sum(axis=1)
    mean = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    return mean / np.clip(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12, None)
