"""Exercise 5: a property-based fuzz of `POST /predict` from its own OpenAPI schema (schemathesis).

Schemathesis reads the app's schema and Hypothesis generates bodies from it: valid ones
(positive) and ones that break it on purpose (negative: wrong types, missing or extra fields,
over-long strings, odd unicode). Whatever arrives, the service must answer with a documented
status, never a 500, and every non-2xx answer must be our JSON error body. In-process (ASGI), on
the simulated provider with no latency; derandomized, so a failure reproduces.

The request model is this file's own (strict, like the exercise's: trimmed, 1 to 300 characters,
no unknown field), with the package's stand-ins for the key check and the limiter: the fuzz is
about the service, not about one student's parts.
"""

from __future__ import annotations

from collections import Counter

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.configuration import set_hypothesis_home_dir
from pydantic import BaseModel, ConfigDict, Field
from schemathesis.generation import GenerationMode

import dspy_workbook as wb
from dspy_workbook.serving import Settings, create_app, standin_parts

KEY = {"X-API-Key": "fuzz-key"}
DOCUMENTED = {200, 400, 401, 413, 422, 429, 503, 504}
CASES_PER_MODE = 600


def strict_question(max_chars: int) -> type[BaseModel]:
    class Question(BaseModel):
        model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
        question: str = Field(min_length=1, max_length=max_chars)

    return Question


def test_predict_never_answers_500_to_1000_generated_requests(tmp_path):
    set_hypothesis_home_dir(str(tmp_path / "hypothesis"))  # nothing written into the repository
    app = create_app(
        Settings(
            api_keys={"fuzzer": KEY["X-API-Key"]},
            rate_per_second=1e6,
            rate_burst=10**6,
            max_question_chars=300,
        ),
        lm=wb.sim_lm(latency=0.0, cache=False),
        parts=standin_parts(request_model=strict_question),
    )
    operation = schemathesis.openapi.from_asgi("/openapi.json", app)["/predict"]["POST"]
    seen: Counter[int] = Counter()
    bad: list[str] = []

    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @settings(
            max_examples=CASES_PER_MODE,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case) -> None:
            # with the key most of the time, so the body's validation is what gets exercised
            response = case.call(headers=KEY if sum(seen.values()) % 10 else {})
            seen[response.status_code] += 1
            if response.status_code >= 500 or response.status_code not in DOCUMENTED:
                bad.append(f"{response.status_code} for {case.body!r}")
            elif response.status_code != 200:
                assert set(response.json()) == {"error"}, response.text

        fuzz()

    total = sum(seen.values())
    print(f"fuzz: {total} requests, statuses {dict(sorted(seen.items()))}")
    assert not bad, f"{len(bad)} undocumented or 5xx answers, e.g. {bad[:3]}"
    assert total >= 1000
    assert seen[200] > 0 and seen[422] > 0  # both valid and invalid bodies were generated
