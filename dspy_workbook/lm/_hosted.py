"""A hosted model (any LiteLLM id) with the structured outputs and logprobs the course needs.

What goes wrong with a plain `dspy.LM` on an OpenAI-compatible server (found against
llama-cpp-python's server serving the course model, `tests/test_hosted_path.py`):

* **Structured outputs.** DSPy's `JSONAdapter` asks for a JSON *schema* only when LiteLLM's model
  catalogue says the model supports one; a model the catalogue does not know (every self-hosted
  model, any model newer than the installed LiteLLM) gets plain JSON mode. Plain JSON mode lets a
  model write any object — `{"reasoning": "42,"}` for a ChainOfThought, `{"question": 2}` for a
  `float` — and the adapter fails to parse it. `HostedLM` asks an *unknown* model for the schema
  (`response_format` ``json_schema``); a model the catalogue marks as unable keeps JSON mode.
  Not every OpenAI-compatible server takes OpenAI's form: llama-cpp-python's answers
  ``json_schema`` with an error (it takes ``{"type": "json_object", "schema": ...}``). So before
  its first structured call, an unknown model is probed with 1-token requests, most standard form
  first, and keeps the first form the server accepts (`HostedLM.negotiate_format`).
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


# Structured-output forms, most to least specific. OpenAI's `json_schema` is the standard; the
# llama.cpp family of servers takes the schema inside JSON mode instead; plain JSON mode and no
# response_format are the last resorts (then the prompt alone asks for the JSON).
_FORMS = ("json_schema", "json_object+schema", "json_object", "none")
_PROBE_SCHEMA = {"type": "object", "properties": {}, "additionalProperties": False}
_CLIENT_KEYS = ("api_key", "api_base", "base_url", "timeout", "headers", "extra_headers")


def _probe_format(form: str) -> dict[str, Any] | None:
    if form == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": "probe", "schema": _PROBE_SCHEMA, "strict": True},
        }
    if form == "json_object+schema":
        return {"type": "json_object", "schema": _PROBE_SCHEMA}
    return {"type": "json_object"} if form == "json_object" else None


def _refuses_response_format(error: BaseException) -> bool:
    """A provider error that is about the response_format field (400, or 422/500 from a server)."""
    return "response_format" in str(error)


class HostedLM(dspy.LM):
    """`dspy.LM` for a hosted model: schema outputs for unknown models, logprobs that arrive."""

    #: The structured-output form this provider takes, found by `negotiate_format` (None: not yet).
    response_form: str | None = None

    @property
    def supports_response_schema(self) -> bool:
        if catalogue_knows(self.model):
            return super().supports_response_schema
        return True  # unknown: ask; `negotiate_format` finds the form the server takes

    @property
    def supported_params(self) -> set[str]:
        params = super().supported_params
        if self.supports_response_schema:
            params.add("response_format")
        return params

    def _probe_args(self, form: str) -> dict[str, Any]:
        args = {key: self.kwargs[key] for key in _CLIENT_KEYS if key in self.kwargs}
        args.update(
            model=self.model,
            messages=[{"role": "user", "content": "Reply with an empty JSON object."}],
            max_tokens=1,
            num_retries=0,
        )
        args.setdefault("timeout", 60)
        response_format = _probe_format(form)
        if response_format is not None:
            args["response_format"] = response_format
        return args

    def negotiate_format(self) -> str | None:
        """Find (once) which structured-output form the provider accepts, with 1-token probes.

        Only a model LiteLLM's catalogue does not know is probed (a known one is described by the
        catalogue). A form the provider refuses with an error about `response_format` is dropped
        for the next; any other error (a wrong key, no connection) decides nothing, and the real
        call then reports it.
        """
        if self.response_form is not None or catalogue_knows(self.model):
            return self.response_form
        import litellm

        for form in _FORMS:
            try:
                litellm.completion(**self._probe_args(form))
            except Exception as error:  # noqa: BLE001 — classified just below
                if _refuses_response_format(error):
                    continue
                return None
            self.response_form = form
            return form
        return None

    async def anegotiate_format(self) -> str | None:
        """`negotiate_format` for the event loop (the probes are awaited, not blocking it)."""
        if self.response_form is not None or catalogue_knows(self.model):
            return self.response_form
        import litellm

        for form in _FORMS:
            try:
                await litellm.acompletion(**self._probe_args(form))
            except Exception as error:  # noqa: BLE001
                if _refuses_response_format(error):
                    continue
                return None
            self.response_form = form
            return form
        return None

    def _adapt(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's kwargs in the form this provider takes (`response_form`), logprobs fixed."""
        if kwargs.get("logprobs") or self.kwargs.get("logprobs"):
            if "top_logprobs" not in kwargs and "top_logprobs" not in self.kwargs:
                kwargs["top_logprobs"] = 1
        schema_model = kwargs.get("response_format")
        if isinstance(schema_model, type) and self.response_form not in (None, "json_schema"):
            if self.response_form == "json_object+schema":
                schema = schema_model.model_json_schema()
                kwargs["response_format"] = {"type": "json_object", "schema": schema}
            elif self.response_form == "json_object":
                kwargs["response_format"] = {"type": "json_object"}
            else:
                kwargs.pop("response_format")
        return kwargs

    def key_variable(self) -> str:
        """Where this LM's key comes from: the variable LiteLLM reads for its provider."""
        if "api_key" in self.kwargs:
            return "the api_key passed to course_lm"
        provider = self.model.split("/", 1)[0]
        return f"{provider.upper()}_API_KEY"

    def _auth_error(self, error: dspy.LMAuthError) -> dspy.LMAuthError:
        """The provider refused the key: one line naming the variable to fix (same error type)."""
        return dspy.LMAuthError(
            f"the provider refused the API key ({error.status or 'auth'} error). Check "
            f"{self.key_variable()} where Jupyter starts, then restart the kernel. "
            f"Provider said: {error.message.splitlines()[0][:160] if error.message else '-'}",
            model=self.model,
            provider=error.provider,
            status=error.status,
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if "response_format" in kwargs:
            self.negotiate_format()
        try:
            return super().__call__(*args, **self._adapt(kwargs))
        except dspy.LMAuthError as error:
            raise self._auth_error(error) from None

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        if "response_format" in kwargs:
            await self.anegotiate_format()
        try:
            return await super().acall(*args, **self._adapt(kwargs))
        except dspy.LMAuthError as error:
            raise self._auth_error(error) from None


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
        sent = lm_kwargs.get("response_format")
        if isinstance(sent, type):  # DSPy's pydantic model of the outputs: a JSON schema
            sent = getattr(lm, "response_form", None) or "json_schema"
        elif isinstance(sent, dict):
            sent = sent.get("type")
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
            if not isinstance(lm, HostedLM):  # local: constrained; sim: garbles on purpose
                raise
            self._explain(error, lm, lm_kwargs)

    async def acall(self, lm, lm_kwargs, signature, demos, inputs):  # noqa: ANN001, ANN204
        try:
            return await super().acall(lm, lm_kwargs, signature, demos, inputs)
        except AdapterParseError as error:
            if not isinstance(lm, HostedLM):  # local: constrained; sim: garbles on purpose
                raise
            self._explain(error, lm, lm_kwargs)


# DSPy's StreamListener looks adapters up by class *name* (ChatAdapter, XMLAdapter, JSONAdapter)
# and refuses any other: under its own name this subclass would break `dspy.streamify` with
# listeners in every notebook. It streams exactly as JSONAdapter does, so it answers to that name.
CourseJSONAdapter.__name__ = "JSONAdapter"
