"""A hosted model (any LiteLLM id) with the structured outputs and log-probabilities the course needs.

What goes wrong with a plain `dspy.LM` on an OpenAI-compatible server (found against
llama-cpp-python's server serving the course model, `tests/test_hosted_path.py`):

* **Structured outputs.** DSPy's `JSONAdapter` asks for a JSON *schema* only when LiteLLM's model
  catalogue says the model supports one; a model the catalogue does not know (every self-hosted
  model, any model newer than the installed LiteLLM) gets plain JSON mode. Plain JSON mode lets a
  model write any object — `{"reasoning": "42,"}` for a ChainOfThought, `{"question": 2}` for a
  `float` — and the adapter fails to parse it. `HostedLM` asks an *unknown* model for the schema
  (`response_format` ``json_schema``); a model the catalogue marks as unable keeps JSON mode.
* **Log-probabilities.** ``logprobs=True`` alone is a complete request in OpenAI's API, but some
  servers (llama-cpp-python's among them) return token log-probabilities only when
  ``top_logprobs`` is set too. `HostedLM` adds ``top_logprobs=1`` to a call that asks for
  log-probabilities without it; OpenAI answers it the same way.
* **A provider that ignores `response_format`** leaves the format to the model: a small model
  then writes text that is not the signature's JSON. `CourseJSONAdapter` turns that parse error
  into one that says so (it stays an `AdapterParseError`, so code that catches one still works).

Nothing here depends on the server's address or the model's name.
"""

from __future__ import annotations

from typing import Any

import dspy
from dspy.utils.exceptions import AdapterParseError

__all__ = ["CourseJSONAdapter", "HostedLM", "catalogue_knows", "is_local"]


def catalogue_knows(model: str) -> bool:
    """True if LiteLLM's bundled model catalogue has an entry for `model`."""
    try:
        import litellm

        litellm.get_model_info(model)
    except Exception:  # litellm raises a bare Exception subclass for an unmapped model
        return False
    return True


class HostedLM(dspy.LM):
    """`dspy.LM` for a hosted model: schema outputs for unknown models, logprobs that arrive."""

    @property
    def supports_response_schema(self) -> bool:
        if catalogue_knows(self.model):
            return super().supports_response_schema
        return True  # unknown: ask; a server that cannot, ignores or refuses (see module doc)

    @property
    def supported_params(self) -> set[str]:
        params = super().supported_params
        if self.supports_response_schema:
            params.add("response_format")
        return params

    def _with_top_logprobs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if kwargs.get("logprobs") or self.kwargs.get("logprobs"):
            if "top_logprobs" not in kwargs and "top_logprobs" not in self.kwargs:
                kwargs["top_logprobs"] = 1
        return kwargs

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return super().__call__(*args, **self._with_top_logprobs(kwargs))

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        return await super().acall(*args, **self._with_top_logprobs(kwargs))


def is_local(lm: Any = None) -> bool:
    """True if `lm` (default: DSPy's configured LM) is the embedded llama.cpp model.

    Notebooks use it to skip a part that only the local model has (quantization, llama.cpp's
    prompt cache, thread settings) with one line on a hosted or simulated model.
    """
    from .local import AsyncLocalLlamaEngine, LocalLlamaEngine  # no llama.cpp import here

    lm = dspy.settings.lm if lm is None else lm
    engine = getattr(lm, "engine", None)
    return isinstance(engine, LocalLlamaEngine | AsyncLocalLlamaEngine)


_EXPLAIN = (
    "{model}'s reply does not follow the JSON the signature asks for. {asked} A provider that "
    "ignores response_format leaves the format to the model, and a small model does not follow "
    "it; use a provider or server that supports structured outputs (json_schema), or a larger "
    "model."
)


class CourseJSONAdapter(dspy.JSONAdapter):
    """DSPy's `JSONAdapter`, with a parse failure on a hosted model explained in one message."""

    def _explain(self, error: AdapterParseError, lm: Any, lm_kwargs: dict[str, Any]) -> None:
        sent = (lm_kwargs.get("response_format") or {}).get("type")
        asked = (
            f"It was asked for response_format={sent!r}."
            if sent
            else "No response_format was sent (the model's capabilities say it takes none)."
        )
        explained = AdapterParseError(
            adapter_name=error.adapter_name,
            signature=error.signature,
            lm_response=error.lm_response,
            message=_EXPLAIN.format(model=getattr(lm, "model", "the model"), asked=asked),
            parsed_result=error.parsed_result,
        )
        raise explained from error

    def __call__(self, lm, lm_kwargs, signature, demos, inputs):  # noqa: ANN001, ANN204
        try:
            return super().__call__(lm, lm_kwargs, signature, demos, inputs)
        except AdapterParseError as error:
            if is_local(lm):
                raise
            self._explain(error, lm, lm_kwargs)

    async def acall(self, lm, lm_kwargs, signature, demos, inputs):  # noqa: ANN001, ANN204
        try:
            return await super().acall(lm, lm_kwargs, signature, demos, inputs)
        except AdapterParseError as error:
            if is_local(lm):
                raise
            self._explain(error, lm, lm_kwargs)
