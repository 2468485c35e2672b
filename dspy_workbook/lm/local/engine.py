"""The local model as a DSPy engine: `LocalLlamaEngine` (its async twin is in `async_engine.py`).

An engine turns one `dspy.lm15.Request` into one `Response` or a stream of events (DSPy's
`dspy.clients.engines.Engine` protocol); DSPy keeps the cache, retries, history and callbacks.
Generations run on the runtime's thread; the caller's thread (or event loop) waits on a queue, so a
caller that leaves early — a closed stream, a cancelled task, Ctrl-C — stops its generation at the
next token, and the cancellation or interrupt itself reaches the caller unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from dspy.clients.engines import Engine
from dspy.lm15 import LockTimeoutError, Request, Response, UnsupportedFeatureError, Usage

from ..._errors import BackendError
from .budget import GrammarPlan
from .closer import StringCloser
from .convert import PROVIDER, Event, chat_messages, error_from, response_from, stream_event
from .grammar import (
    DEFAULT_FIELD_MAX_CHARS,
    DEFAULT_MAX_CHARS,
    DEFAULT_MAX_ITEMS,
    MAX_CHARS_LIMIT,
    MAX_ITEMS_LIMIT,
)
from .hooks import TokenHooks
from .model_file import SETUP_HINT, default_model_path, import_llama_cpp, local_model_path
from .planner import GrammarPlanner
from .repetition import DEFAULT_NGRAM, RepetitionGuard
from .runtime import Generation, Runtime, shared_runtime

__all__ = ["LocalLlamaEngine"]

_PASSTHROUGH_EXTENSIONS = frozenset({"repeat_penalty", "min_p"})
_Emit = Callable[[Event], None]


def _whole(name: str, value: Any, low: int, high: int) -> int:
    """`value` as an int in [low, high], or a `BackendError` that says what is allowed."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BackendError(
            f"local_lm: {name} must be a whole number from {low} to {high}, got {value!r}"
        )
    return value


class LocalLlamaEngine(Engine):
    """Synchronous DSPy engine running SmolLM2-135M-Instruct in-process with llama.cpp."""

    supports_function_calling = False
    supports_reasoning = False
    supports_response_schema = True
    supported_params = frozenset(
        {
            "response_format",
            "temperature",
            "max_tokens",
            "top_p",
            "top_k",
            "seed",
            "stop",
            "frequency_penalty",
            "presence_penalty",
            "logprobs",
            "top_logprobs",
        }
    )

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_batch: int = 512,
        temperature: float = 0.0,
        repeat_penalty: float = 1.0,
        repetition_guard: int | None = DEFAULT_NGRAM,
        default_max_chars: int = DEFAULT_MAX_CHARS,
        field_max_chars: Mapping[str, int] | None = None,
        max_items: int = DEFAULT_MAX_ITEMS,
        block_placeholders: bool = True,
        close_when_done: bool = True,
        fast_grammar: bool = True,
        wait_timeout: float = 300.0,
        shared: bool = True,
    ) -> None:
        """Check the settings and resolve the model now (so a mistake fails here); load it on the
        first call. `repetition_guard` is the n-gram size the guard blocks (None: no guard);
        `close_when_done` closes a JSON string where the model chooses to end it (`closer.py`);
        `n_threads=None` lets the runtime pick 1 or 2 threads call by call from what other
        processes use (`threads.py`); an int fixes the count."""
        import_llama_cpp()
        path = Path(model_path) if model_path is not None else local_model_path()
        if not path.is_file():
            raise BackendError(f"No model file at {path}. {SETUP_HINT}.")
        self.model_path = path
        self.n_ctx = _whole("n_ctx", n_ctx, 64, 32768)
        self.threads_setting = None if n_threads is None else _whole("n_threads", n_threads, 1, 256)
        self.n_batch = _whole("n_batch", n_batch, 1, 8192)
        self.temperature = float(temperature)
        # 1.0, not the 1.3 a prototype used: a penalty also hits the JSON punctuation the grammar
        # needs (1.3 gave 9 placeholder answers in 16); the repetition guard does the job instead.
        self.repeat_penalty = float(repeat_penalty)
        if repetition_guard is not None:
            _whole("repetition_guard", repetition_guard, 2, 64)
        self.repetition_guard = repetition_guard
        self.default_max_chars = _whole("default_max_chars", default_max_chars, 1, MAX_CHARS_LIMIT)
        fields = dict(DEFAULT_FIELD_MAX_CHARS if field_max_chars is None else field_max_chars)
        for name, bound in fields.items():
            _whole(f"field_max_chars[{name!r}]", bound, 1, MAX_CHARS_LIMIT)
        self.field_max_chars = fields
        self.max_items = _whole("max_items", max_items, 1, MAX_ITEMS_LIMIT)
        self.block_placeholders = block_placeholders
        self.close_when_done = close_when_done
        self.fast_grammar = fast_grammar
        if not wait_timeout > 0:
            raise BackendError(f"local_lm: wait_timeout must be > 0 seconds, got {wait_timeout!r}")
        self.wait_timeout = wait_timeout  # longest wait for the model while other calls run
        self.shared = shared
        settings = {
            "n_ctx": self.n_ctx,
            "n_threads": self.threads_setting,
            "n_batch": self.n_batch,
        }
        # shared=True: one model per process for these load settings (notebooks build many LMs).
        self._runtime = shared_runtime(path, **settings) if shared else Runtime(path, **settings)
        self._planner = GrammarPlanner(
            default_max_chars=self.default_max_chars,
            field_max_chars=self.field_max_chars,
            max_items=self.max_items,
            block_placeholders=self.block_placeholders,
        )

    # -- state, so `lm.dump_state()` / `program.save()` work with this LM ----------------------
    def dump_state(self) -> dict[str, Any]:
        """JSON-serialisable settings (the model path only if it is not the packaged default)."""
        default = self.model_path == default_model_path()
        return {
            "model_path": None if default else str(self.model_path),
            "n_ctx": self.n_ctx,
            "n_threads": self.threads_setting,
            "n_batch": self.n_batch,
            "temperature": self.temperature,
            "repeat_penalty": self.repeat_penalty,
            "repetition_guard": self.repetition_guard,
            "default_max_chars": self.default_max_chars,
            "field_max_chars": dict(self.field_max_chars),
            "max_items": self.max_items,
            "block_placeholders": self.block_placeholders,
            "close_when_done": self.close_when_done,
            "fast_grammar": self.fast_grammar,
            "wait_timeout": self.wait_timeout,
            "shared": self.shared,
        }

    @property
    def n_threads(self) -> int:
        """The threads llama.cpp uses now: the fixed count, or the runtime's latest choice."""
        return self._runtime.threads

    @classmethod
    def load_state(cls, state: Mapping[str, Any]) -> LocalLlamaEngine:
        """Rebuild an engine from `dump_state()`."""
        return cls(**dict(state))

    # -- request → llama.cpp arguments --------------------------------------------------------
    def plan(self, schema: Mapping[str, Any] | None, max_tokens: int | None) -> GrammarPlan:
        """The grammar and token budget this engine decodes `schema` with (see `budget.py`)."""
        return self._planner.plan(schema, max_tokens)

    def grammar_text(self, schema: Mapping[str, Any] | None, max_tokens: int | None = None) -> str:
        """The GBNF this engine decodes with for `schema` (strings bounded), for inspection."""
        return self.plan(schema, max_tokens).grammar

    def _arguments(self, request: Request) -> tuple[dict[str, Any], Generation]:
        """Arguments for `Llama.create_chat_completion` and the generation's settings; refuses
        what the model cannot do."""
        config = request.config
        if request.tools or config.tool_choice is not None:
            raise UnsupportedFeatureError("the local model has no tool calling", provider=PROVIDER)
        if config.reasoning is not None or config.probabilities is not None:
            raise UnsupportedFeatureError(
                "the local model supports no reasoning or probabilities settings "
                "(token logprobs: pass logprobs=True)",
                provider=PROVIDER,
            )
        extensions = dict(config.extensions or {})
        unknown = set(extensions) - _PASSTHROUGH_EXTENSIONS
        if unknown:
            raise UnsupportedFeatureError(
                f"the local model does not take {sorted(unknown)}", provider=PROVIDER
            )
        args: dict[str, Any] = {
            "messages": chat_messages(request),
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
        generation = Generation(fast_grammar=self.fast_grammar)
        fmt = config.response_format
        if fmt is not None:
            # What `response_format={"type": "json_object", "schema": ...}` does inside
            # llama-cpp-python, done here so the schema gets its bounds and its grammar is reused.
            schema = fmt.get("schema") if fmt.get("type") == "json_schema" else None
            plan, args["grammar"] = self._planner.planned(schema, config.max_tokens)
            args["max_tokens"] = plan.max_tokens
            generation.needed = plan.max_tokens if plan.bounded else None
            generation.grammar_text = plan.grammar
            generation.refit = functools.partial(self._planner.refit, self._runtime, schema)
        generation.logprobs = config.logprobs
        return args, generation

    # -- running -------------------------------------------------------------------------------
    def _hooks(self, generation: Generation) -> TokenHooks | None:
        runtime = self._runtime
        piece = runtime.piece
        guard = RepetitionGuard(piece, self.repetition_guard) if self.repetition_guard else None
        closer = None
        quote = runtime.token_of(b'"') if self.close_when_done else None
        # JSON output only, and only if the vocabulary spells a lone quote in one token.
        if quote is not None and generation.grammar_text is not None:
            closer = StringCloser(piece, runtime.is_end, quote, runtime.token_of)
        if generation.logprobs is None and guard is None and closer is None:
            return None
        return TokenHooks(piece, logprobs=generation.logprobs, guard=guard, closer=closer)

    def _generate(
        self, args: dict[str, Any], generation: Generation, emit: _Emit, stop: threading.Event
    ) -> None:
        """One generation, on the model's thread: emits start, text deltas, then (finish, usage)."""
        emit(("start", None))
        if stop.is_set():  # the caller left while this call was queued
            return
        runtime = self._runtime
        with runtime.lock:
            llama = runtime.llama()
            self._planner.check(runtime, generation.grammar_text)
            generation.hooks = self._hooks(generation)
            runtime.current = generation
            hooks, finish, pending = generation.hooks, "stop", None
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
                            # One delta behind, so the last one can carry the last logprobs.
                            if pending is not None:
                                emit(("delta", pending))
                            pending = (piece, hooks.take() if hooks is not None else ())
                        if choice.get("finish_reason") == "length":
                            finish = "length"
                finally:
                    chunks.close()
            except Exception as exc:
                # Forget the half-evaluated prompt, so the next call starts from a clean context.
                with contextlib.suppress(Exception):  # recovery must never hide the original error
                    llama.reset()
                raise error_from(exc) from exc
            finally:
                runtime.current = Generation()
            if pending is not None:
                rest = hooks.take() if hooks is not None else ()
                emit(("delta", (pending[0], pending[1] + rest)))
            usage = Usage(input_tokens=generation.prompt, output_tokens=generation.generated)
        emit(("end", (finish, usage)))

    def _submit(self, request: Request, emit: _Emit, stop: threading.Event) -> Future[None]:
        """Queue a generation for `request`; its events, then "done" or "error", go to `emit`."""
        args, generation = self._arguments(request)  # refusals raise here, before queueing

        def job() -> None:
            try:
                self._generate(args, generation, emit, stop)
            except BaseException as exc:  # delivered to the caller, re-raised there
                emit(("error", exc))
            else:
                emit(("done", None))

        return self._runtime.submit(job)

    def busy_error(self) -> LockTimeoutError:
        return LockTimeoutError(
            f"the local model was busy for {self.wait_timeout:g} s (other calls queued)",
            provider=PROVIDER,
        )

    def _events(self, request: Request) -> Iterator[Event]:
        """The generation's events in the calling thread; leaving early stops the generation."""
        channel: queue.SimpleQueue[Event] = queue.SimpleQueue()
        stop = threading.Event()
        future = self._submit(request, channel.put, stop)
        try:
            try:
                item = channel.get(timeout=self.wait_timeout)
            except queue.Empty:
                if future.cancel():
                    raise self.busy_error() from None
                item = channel.get()  # it started just now
            while item[0] not in ("done", "error"):
                yield item
                item = channel.get()
            if item[0] == "error":
                raise item[1]
        finally:
            # Abandoned, interrupted (Ctrl-C) or finished: the model's thread moves on, and the
            # interrupt propagates as it is — nothing here raises in its place.
            stop.set()

    def complete(self, request: Request) -> Response:
        """Generate one whole answer."""
        return response_from(request, self._events(request))

    def stream(self, request: Request) -> Iterator[Any]:
        """Generate one answer as events: start, a text delta per decoded piece, end + usage."""
        events = self._events(request)
        try:
            for item in events:
                yield stream_event(request, item)
        finally:
            events.close()  # a consumer that leaves early frees the model at the next token

    def close(self) -> None:
        """Free the model if this engine owns it; a shared model stays loaded for other engines."""
        if not self.shared:
            self._runtime.close()
