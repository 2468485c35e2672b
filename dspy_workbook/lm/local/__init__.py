"""The embedded course model: SmolLM2-135M-Instruct, in-process on llama.cpp, as DSPy engines.

Why an *engine* and not a `BaseLM` subclass? In DSPy 3.4 an engine only turns one canonical
`dspy.lm15.Request` into one `Response` (or a stream of events); DSPy keeps owning the cache,
retries, history, callbacks, usage tracking and `dspy.streamify`. So the local model behaves in
every notebook exactly like a hosted one — only offline, free and on this CPU.

Why a 135M model parses every time: DSPy's `JSONAdapter` sends the JSON schema of the signature's
outputs; the engine turns it into a llama.cpp grammar whose strings and lists are bounded, and
sizes those bounds and the call's token budget so the JSON always closes — the rule is in
`budget.py`. A repetition guard (`repetition.py`) stops loops without touching JSON punctuation,
and the string closer (`closer.py`) ends a string where the model ends its value, so those bounds
stay bounds and do not become the length of an answer.

The modules, one job each: `model_file` (finding the model), `grammar` (schema → GBNF), `budget`
(bounds and token budget), `planner` (an engine's cache of checked grammars), `repetition` +
`closer` + `hooks` + `sampler` (what happens at each token), `threads` (how many threads, call by
call), `runtime` (the loaded model, its thread, the llama-cpp-python patches), `convert`
(requests, responses and errors), `engine` and `async_engine` (the DSPy engines, typed against
`dspy.clients.engines.Engine`/`AsyncEngine`).

Log-probabilities: ``lm(..., logprobs=True)``, ``dspy.Predict(sig, logprobs=True)`` or
``config={"logprobs": True, "top_logprobs": 3}`` per call return llama.cpp's token
log-probabilities (the model's full distribution, before grammar and guard) the way DSPy 3.4
surfaces them: ``prediction.logprobs["content"]``; see `dspy_workbook.lm.answer_confidence`.

Concurrency: a llama.cpp context is not re-entrant, so the model runs on one thread of its own.
Calls from several threads or tasks queue for it and are served one at a time; that also lets
llama.cpp reuse the prompt prefix the previous call evaluated.

Speed: two llama.cpp threads are ~25% faster than one on free cores, and several times slower as
soon as another process wants a core (each step waits for the slower thread). So by default the
runtime measures what the *other* processes use and picks 2 threads or 1 before each call and
every 0.1 s during it (`threads.py`); ``local_lm(n_threads=N)`` fixes the count instead.
"""

from __future__ import annotations

import inspect
from typing import Any

import dspy

from .async_engine import AsyncLocalLlamaEngine
from .budget import GrammarPlan, plan_grammar, worst_case_length
from .engine import LocalLlamaEngine
from .grammar import (
    DEFAULT_FIELD_MAX_CHARS,
    DEFAULT_MAX_CHARS,
    DEFAULT_MAX_ITEMS,
    bound_schema,
    json_grammar_text,
)
from .model_file import LOCAL_MODEL, MODEL_FILE, MODEL_PACKAGE, import_llama_cpp, local_model_path
from .repetition import RepetitionGuard

__all__ = [
    "AsyncLocalLlamaEngine",
    "DEFAULT_FIELD_MAX_CHARS",
    "DEFAULT_MAX_CHARS",
    "DEFAULT_MAX_ITEMS",
    "GrammarPlan",
    "LOCAL_MODEL",
    "LocalLlamaEngine",
    "MODEL_FILE",
    "MODEL_PACKAGE",
    "RepetitionGuard",
    "bound_schema",
    "import_llama_cpp",
    "json_grammar_text",
    "local_lm",
    "local_model_path",
    "plan_grammar",
    "worst_case_length",
]

# Engine settings `local_lm` routes to the engine; temperature stays with dspy.LM, which sends it
# with every request (the engine's own default only applies to requests that carry none).
_ENGINE_OPTIONS = frozenset(inspect.signature(LocalLlamaEngine.__init__).parameters) - {
    "self",
    "temperature",
}


def local_lm(*, engine: LocalLlamaEngine | None = None, **options: Any) -> dspy.LM:
    """The embedded SmolLM2-135M model as a `dspy.LM` (deterministic, max_tokens 256 by default).

    Keywords that `LocalLlamaEngine` takes (``n_threads``, ``field_max_chars``,
    ``repetition_guard``, ``shared``, …) configure the engine; the rest go to `dspy.LM`
    (``cache=False``, ``max_tokens=128``, ``temperature=0.7``, ``logprobs=True``, …). Or pass a
    ready `engine=` (e.g. ``LocalLlamaEngine(shared=False)``).
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
