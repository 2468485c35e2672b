"""What an answer costs: tokens × a price table, in US dollars.

Prices are per million tokens (input, output) as the providers list them. They change: check
the provider's page before you rely on a figure, and add your own models to `PRICES`. The
embedded local model costs nothing per token (you pay for the machine instead): it is the only
backend priced by what it is rather than by the table — its LM's model id is ``local/…``, a
namespace no LiteLLM provider has, so no hosted call can carry it. Anything else the table does
not list has an unknown price (`price_of` returns None; a cost becomes NaN in an observation and
"unknown" in the exported counters), even when it names a small or self-hosted model: the same
SmolLM2 served by a provider, or a class server, is not free to whoever pays for it. Give a
self-hosted model its price yourself (``PRICES["openai/my-model"] = Price(0, 0)``). The simulated
provider is priced like gpt-4o-mini on purpose, so that cost and "cost saved by the cache" show
real-looking numbers during grading and in the notebook.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..lm.local.model_file import LOCAL_MODEL

__all__ = ["PRICES", "Price", "answer_cost", "price_of"]


@dataclass(frozen=True)
class Price:
    """US dollars per million input and output tokens."""

    input_per_million: float
    output_per_million: float


PRICES: dict[str, Price] = {
    # hosted models (list prices per 1M tokens, checked 2026; verify before budgeting)
    "openai/gpt-4o-mini": Price(0.15, 0.60),
    "openai/gpt-4o": Price(2.50, 10.00),
    "openai/gpt-4.1-mini": Price(0.40, 1.60),
    "anthropic/claude-3-5-haiku-latest": Price(0.80, 4.00),
    "anthropic/claude-sonnet-4-5": Price(3.00, 15.00),
    # the course's own backends
    "sim/course-provider": Price(0.15, 0.60),  # priced like gpt-4o-mini (see module docstring)
    "sim/scenario-provider": Price(0.15, 0.60),  # Exercise 6's breakable simulator, same price
    "local": Price(0.0, 0.0),
}
# The embedded engine's model ids (`dspy_workbook.lm.local`): "local/…".
EMBEDDED_PREFIX = LOCAL_MODEL.split("/", 1)[0] + "/"


def price_of(model: str) -> Price | None:
    """The price of `model`: the table's, zero for the embedded model, None when unknown."""
    if model in PRICES:
        return PRICES[model]
    if model.startswith(EMBEDDED_PREFIX):
        return PRICES["local"]
    return None


def answer_cost(model: str, input_tokens: int, output_tokens: int) -> float:
    """Dollars for one call; 0.0 for the embedded model; `KeyError` naming the table if unknown."""
    if input_tokens < 0 or output_tokens < 0:
        raise ValueError(f"token counts must be >= 0, got {input_tokens} and {output_tokens}")
    price = price_of(model)
    if price is None:
        raise KeyError(
            f"no price for model {model!r}: add it to dspy_workbook.monitoring.PRICES "
            "(dollars per million input and output tokens)"
        )
    return (input_tokens * price.input_per_million + output_tokens * price.output_per_million) / 1e6
