"""The course language models: embedded local model, simulated provider, hosted models.

Everything outside this package imports from here (`dspy_workbook.lm`), never from its modules.
"""

from ._hosted import CourseJSONAdapter, HostedLM, is_local
from ._request import request_inputs, request_messages, request_text
from ._select import BACKEND_ENV, BackendInfo, backend_name, course_lm, describe, setup
from ._sim import SIM_MODEL, AsyncSimEngine, SimEngine, SimStats, sim_lm
from .confidence import answer_confidence, token_logprobs
from .local import (
    LOCAL_MODEL,
    AsyncLocalLlamaEngine,
    GrammarPlan,
    LocalLlamaEngine,
    bound_schema,
    json_grammar_text,
    local_lm,
    local_model_path,
    worst_case_length,
)

__all__ = [
    "AsyncLocalLlamaEngine",
    "AsyncSimEngine",
    "BACKEND_ENV",
    "BackendInfo",
    "CourseJSONAdapter",
    "HostedLM",
    "GrammarPlan",
    "LOCAL_MODEL",
    "LocalLlamaEngine",
    "SIM_MODEL",
    "SimEngine",
    "SimStats",
    "answer_confidence",
    "backend_name",
    "bound_schema",
    "course_lm",
    "describe",
    "is_local",
    "json_grammar_text",
    "local_lm",
    "local_model_path",
    "request_inputs",
    "request_messages",
    "request_text",
    "setup",
    "sim_lm",
    "token_logprobs",
    "worst_case_length",
]
