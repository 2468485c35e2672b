"""One loaded llama.cpp model, its one thread, and the patches that adapt llama-cpp-python to it.

Patches on the loaded `Llama` (instance attributes, nothing global):

* `generate` counts real prompt/generated tokens (streams report no usage), refuses a generation
  whose token budget would not fit the context window (llama-cpp-python would silently cut it, and
  a cut JSON does not parse), shows each token to the call's `TokenHooks`, applies the thread
  governor's choice between tokens, and ends the turn as soon as a constrained JSON answer closes.
* `_init_sampler` returns `LazyGrammarSampler` for plain greedy decoding under a grammar, and
  wraps any other sampler so the call's hooks still run.
"""

from __future__ import annotations

import ctypes
import os
import platform
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..._errors import BackendError
from ...env import LLAMA_EXTRA_BUFFERS
from .buffers import extra_buffer_types
from .closer import JsonStrings
from .hooks import TokenHooks
from .model_file import SETUP_HINT, import_llama_cpp
from .sampler import HookedSampler, LazyGrammarSampler
from .threads import ThreadGovernor, auto_threads

__all__ = [
    "Generation",
    "Runtime",
    "auto_threads",
    "extra_buffer_types_enabled",
    "shared_runtime",
]

_T = TypeVar("_T")


@dataclass
class Generation:
    """Settings and counters of the generation in progress (one at a time per runtime)."""

    prompt: int = 0
    generated: int = 0
    fast_grammar: bool = True
    hooks: TokenHooks | None = None
    needed: int | None = None  # tokens the grammar may need; refused if the context cannot hold it
    # When it cannot: a smaller grammar whose worst case fits `room` tokens, or None.
    refit: Callable[[int], Any] | None = None
    grammar_text: str | None = None  # checked with llama.cpp's parser before the first use
    logprobs: int | None = None  # the request's `logprobs` (None: not asked for)


class Runtime:
    """One `llama_cpp.Llama`, loaded on first use, and the one thread that runs it.

    Every generation runs on this runtime's own thread, one at a time, in arrival order. Why one
    thread: llama.cpp's context is not re-entrant, and its OpenMP workers belong to the thread that
    calls it. Measured here: once the model had run on one thread, calls from any other thread took
    3-5x longer (0.25-0.5 s instead of 0.09 s for a short answer). Jupyter's main thread, DSPy's
    thread pools, asyncio's executor and FastAPI's workers therefore all hand their work to this
    one.
    """

    def __init__(
        self, model_path: Path, *, n_ctx: int, n_threads: int | None, n_batch: int
    ) -> None:
        """`n_threads=None`: a `ThreadGovernor` picks the count before and during each call."""
        self.model_path = model_path
        self.n_ctx, self.n_threads, self.n_batch = n_ctx, n_threads, n_batch
        self.governor = ThreadGovernor() if n_threads is None else None
        self._applied = n_threads  # the count the loaded context uses
        self.lock = threading.Lock()  # held for every use of the context (besides the queue)
        self.current = Generation()
        self._llama: Any = None
        self._pieces: dict[int, bytes] = {}
        self._spelled: dict[bytes, int | None] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    def submit(self, job: Callable[[], _T]) -> Future[_T]:
        """Queue `job` on the model's thread."""
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-llama")
            return self._executor.submit(job)

    @property
    def threads(self) -> int:
        """The thread count llama.cpp uses now (the governor's choice, or the fixed count)."""
        if self._applied is not None:
            return self._applied
        return self.governor.current if self.governor is not None else 1

    def retune(self) -> None:
        """Apply the governor's choice now (model thread only; between two llama.cpp steps)."""
        if self.governor is None or self._llama is None:
            return
        threads = self.governor.choose()
        if threads != self._applied:
            self._llama._ctx.set_n_threads(threads, threads)
            self._llama.n_threads = self._llama.n_threads_batch = threads
            self._applied = threads

    def llama(self) -> Any:
        """The loaded model (called on the model's thread only, so loading happens once)."""
        if self._llama is None:
            self._llama = self._load()
        return self._llama

    def piece(self, token: int) -> bytes:
        """The bytes of one token (cached; model thread only)."""
        piece = self._pieces.get(token)
        if piece is None:
            # Not `LlamaModel.token_to_piece`: it returns its whole 32-byte buffer, zeros included.
            llama_cpp, buffer = import_llama_cpp(), ctypes.create_string_buffer(64)
            size = llama_cpp.llama_token_to_piece(
                self.llama()._model.vocab, token, buffer, len(buffer), 0, False
            )
            piece = self._pieces[token] = buffer.raw[: max(0, size)]
        return piece

    def is_end(self, token: int) -> bool:
        """Whether `token` ends the turn (model thread only)."""
        llama_cpp = import_llama_cpp()
        return bool(llama_cpp.llama_vocab_is_eog(self.llama()._model.vocab, token))

    def token_of(self, text: bytes) -> int | None:
        """The single token that spells `text`, or None (model thread only; cached)."""
        if text not in self._spelled:
            tokens = self.llama().tokenize(text, add_bos=False, special=False)
            self._spelled[text] = tokens[0] if len(tokens) == 1 else None
        return self._spelled[text]

    def grammar_parses(self, grammar_text: str) -> bool:
        """Whether llama.cpp's own parser accepts `grammar_text` (model thread only).

        llama-cpp-python hands llama.cpp's result to the sampler chain unchecked, so a grammar
        llama.cpp rejects is a null pointer there and kills the process: check it first.
        """
        llama_cpp = import_llama_cpp()
        sampler = llama_cpp.llama_sampler_init_grammar(
            self.llama()._model.vocab, grammar_text.encode("utf-8"), b"root"
        )
        if not sampler:
            return False
        llama_cpp.llama_sampler_free(sampler)
        return True

    def _load(self) -> Any:
        llama_cpp = import_llama_cpp()
        threads = self.governor.choose() if self.governor is not None else self.n_threads
        try:
            with extra_buffer_types(extra_buffer_types_enabled()):
                # verbose=False silences llama.cpp's own log callback and load chatter.
                llama = llama_cpp.Llama(
                    model_path=str(self.model_path),
                    n_ctx=self.n_ctx,
                    n_batch=self.n_batch,
                    n_threads=threads,
                    n_threads_batch=threads,
                    verbose=False,
                )
        except Exception as exc:  # a truncated or foreign file
            raise BackendError(
                f"llama.cpp could not load {self.model_path}: {exc}. {SETUP_HINT}."
            ) from exc
        self._applied = threads
        self._patch_generate(llama, llama_cpp)
        self._patch_sampler(llama)
        return llama

    def _patch_generate(self, llama: Any, llama_cpp: Any) -> None:
        original, vocab, is_eog = llama.generate, llama._model.vocab, llama_cpp.llama_vocab_is_eog
        eos, runtime = llama.token_eos(), self

        def generate(tokens: Any, *args: Any, **kwargs: Any) -> Iterator[int]:
            current = runtime.current
            current.prompt, current.generated = len(tokens), 0
            room = runtime.n_ctx - current.prompt - 1
            if current.needed is not None and current.needed > room:
                # The worst case does not fit beside this prompt: shrink the bounds to fit.
                smaller = current.refit(room) if current.refit is not None else None
                if smaller is not None and "grammar" in kwargs:
                    kwargs["grammar"], current.needed = smaller, room
            if current.needed is not None and current.needed > room:
                raise ValueError(
                    f"the prompt ({current.prompt} tokens) and the answer's worst case "
                    f"({current.needed} tokens) exceed the context window ({runtime.n_ctx}): "
                    "shorten the prompt, lower max_tokens, or pass a larger n_ctx"
                )
            governor = runtime.governor
            json_text = JsonStrings() if current.grammar_text is not None else None
            runtime.retune()  # before the prompt is evaluated
            tokens_out = original(tokens, *args, **kwargs)
            try:
                for token in tokens_out:
                    if governor is not None:
                        governor.tokens[runtime.threads] += 1
                        if governor.due():
                            runtime.retune()  # the next token runs with the new count
                    end = bool(is_eog(vocab, token))
                    # llama-cpp-python's own usage excludes the end-of-turn token; so do we.
                    current.generated += not end
                    if current.hooks is not None:
                        current.hooks.accept(token, end_of_turn=end)
                    yield token
                    if json_text is not None and not end:
                        json_text.feed(runtime.piece(token))
                        if json_text.complete:
                            # The JSON has closed: the grammar allows only a space and the end
                            # now, so end the turn without evaluating the brace and sampling
                            # the end-of-turn token (one model step less per call).
                            if current.hooks is not None:
                                current.hooks.accept(eos, end_of_turn=True)
                            yield eos
                            return
            finally:
                tokens_out.close()

        llama.generate = generate

    def _patch_sampler(self, llama: Any) -> None:
        original, runtime = llama._init_sampler, self

        def init_sampler(**kwargs: Any) -> Any:
            current = runtime.current
            hooks = current.hooks if current.hooks is not None and current.hooks.active else None
            plain_greedy = (
                kwargs.get("temp") == 0.0
                and kwargs.get("repeat_penalty", 1.0) == 1.0
                and not kwargs.get("frequency_penalty")
                and not kwargs.get("presence_penalty")
                and kwargs.get("logits_processor") is None
            )
            if plain_greedy and kwargs.get("grammar") is not None and current.fast_grammar:
                return LazyGrammarSampler(llama, kwargs["grammar"], hooks)
            sampler = original(**kwargs)
            return HookedSampler(sampler, llama, hooks) if hooks is not None else sampler

        llama._init_sampler = init_sampler

    def _free(self) -> None:
        with self.lock:
            llama, self._llama = self._llama, None
            self._pieces, self._spelled = {}, {}
            self._applied = self.n_threads
            if llama is not None:
                llama.close()

    def close(self) -> None:
        """Free the model's memory after the calls already queued (a later call loads it again)."""
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.submit(self._free).result()
            executor.shutdown(wait=True)


_X86 = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})


def extra_buffer_types_enabled(
    cpuinfo: str | None = None, machine: str | None = None, environ: Mapping[str, str] = os.environ
) -> bool:
    """Whether llama.cpp may use its "extra buffer types" (weight repacking, Intel AMX) here.

    Not on x86 CPUs with AMX (Intel Sapphire Rapids and later): llama.cpp 0.3.36 puts the Q4_1
    weights in its AMX buffer there, and the first prompt of more than one token crashes the
    process with a segfault (measured: every chat call). Not on x86 either when the CPU flags
    cannot be read (no /proc/cpuinfo: Windows, macOS on Intel): a crash is worse than a slowdown.
    Elsewhere — x86 without AMX, ARM — llama.cpp's default (on). What it is worth, measured on a
    2-core AVX-512 CPU without AMX: nothing for the shipped Q4_1 file (llama.cpp repacks no Q4_1
    tensor, so all 273 tensors stay in plain CPU memory either way), +35% prompt and +17%
    generation speed for a Q4_0 copy of the model (repacked 8x8). `WORKBOOK_LLAMA_EXTRA_BUFFERS`
    = "0"/"1" overrides the detection.
    """
    forced = environ.get(LLAMA_EXTRA_BUFFERS, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if (machine if machine is not None else platform.machine()).lower() not in _X86:
        return True  # llama.cpp's AMX buffer exists on x86 only
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False
    flags = {
        flag
        for line in cpuinfo.splitlines()
        if line.startswith("flags") and ":" in line
        for flag in line.split(":", 1)[1].split()
    }
    return bool(flags) and not any(flag.startswith("amx") for flag in flags)


_shared_runtimes: dict[tuple[str, int, int | None, int], Runtime] = {}
_shared_lock = threading.Lock()


def shared_runtime(model_path: Path, *, n_ctx: int, n_threads: int | None, n_batch: int) -> Runtime:
    """The process-wide runtime for these settings: engines built with them share one model."""
    key = (str(model_path), n_ctx, n_threads, n_batch)
    with _shared_lock:
        runtime = _shared_runtimes.get(key)
        if runtime is None:
            runtime = _shared_runtimes[key] = Runtime(
                model_path, n_ctx=n_ctx, n_threads=n_threads, n_batch=n_batch
            )
        return runtime
