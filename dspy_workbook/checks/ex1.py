"""Self-checks and hints for Exercise 1 (caching): `ex1.check_…(…)` after each task's solution cell.

Each check exercises exactly the behaviours its task's text lists as graded, as the hidden tests
do (with cases of their own), so ✅ here means the hidden tests pass. Task 3 is checked with its
own key and an in-memory cache, never the student's Tasks 1–2, as its graded cell is. The
optional similarity task is checked too, and carries no points.
"""

from __future__ import annotations

import datetime
import math
import re
import tempfile
import warnings
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import dspy

from ..caching import DictCache, ManualClock
from ..lm import sim_lm
from ._core import call_student, expect, expect_callable
from ._exercise import Exercise

__all__ = [
    "check_all",
    "check_cache_key",
    "check_cached_module",
    "check_disk_cache",
    "check_similar_cache",
    "ex",
    "hint",
]

ex = Exercise("Exercise 1 · caching")
HEX_KEY = re.compile(r"[0-9a-f]{64}")


# -- Task 1 -------------------------------------------------------------------------------------
@ex.task(
    "key",
    "Task 1 · cache key",
    points=2,
    needs=("make_cache_key",),
    hints=(
        "What changes the answer? Put all four parts in one dict: the inputs, `signature`, "
        "`model` and `lm_settings or {}` (so None and {} agree).",
        "Pass that dict through `wbc.tag_types(...)` (it keeps a tuple apart from a list, `1` "
        'from `"1"`), then `json.dumps(..., sort_keys=True)`, then '
        '`hashlib.sha256(text.encode("utf-8")).hexdigest()`.',
        '`payload = {"inputs": inputs, "signature": signature, "model": model, '
        '"lm_settings": lm_settings or {}}`; `text = json.dumps(wbc.tag_types(payload), '
        "sort_keys=True)`; `return hashlib.sha256(text.encode()).hexdigest()`.",
    ),
)
def check_cache_key(make_cache_key: Callable[..., str]) -> str:
    """Format, determinism, every part changes the key, and types JSON would merge stay apart."""
    expect_callable(make_cache_key, "make_cache_key")
    base = {
        "signature": "question -> answer",
        "model": "sim/small",
        "lm_settings": {"temperature": 0.0},
    }
    question = {"question": "What is a signature?"}

    def key(inputs: dict = question, **changes: Any) -> str:
        got = call_student("`make_cache_key`", make_cache_key, inputs, **{**base, **changes})
        expect(got is not None, "`make_cache_key` returned None — did you forget `return`?")
        expect(
            type(got) is str and HEX_KEY.fullmatch(got),
            f"`make_cache_key` returned {got!r}: a key is 64 lowercase hex characters, a SHA-256 "
            "hex digest (`hashlib.sha256(...).hexdigest()`)",
        )
        return got

    k = key()
    again = key()
    expect(
        k == again,
        f"the same call gave two different keys ({k[:12]}… and {again[:12]}…): the key must "
        "not depend on the time, randomness or object ids",
    )
    expect(
        key({"question": "q", "context": "c"}) == key({"context": "c", "question": "q"}),
        "the same inputs with their keys in another order gave different keys — serialise "
        "with `sort_keys=True` (or `wbc.tag_types`, which sorts)",
    )
    expect(
        key(lm_settings={"temperature": 0.0, "max_tokens": 9})
        == key(lm_settings={"max_tokens": 9, "temperature": 0.0}),
        "the same `lm_settings` with their keys in another order gave different keys",
    )
    expect(
        key(lm_settings=None) == key(lm_settings={}),
        "`lm_settings=None` and `lm_settings={}` gave different keys — both mean no settings",
    )
    changed = [
        ("two different questions", key({"question": "What is a module?"})),
        ("a question that differs only in case", key({"question": "What is a Signature?"})),
        ("changing the signature's instructions", key(signature="question -> answer\nBe brief.")),
        ("changing the signature's output type", key(signature="question -> answer: int")),
        ("changing `model`", key(model="sim/large")),
        ("changing the temperature", key(lm_settings={"temperature": 0.9})),
        ("adding `max_tokens`", key(lm_settings={"temperature": 0.0, "max_tokens": 20})),
    ]
    for label, other in changed:
        expect(other != k, f"{label} kept the same key — it can change the answer, so key it")
    merged = [
        ("a list and a tuple with the same items", ["a", "b"], ("a", "b")),
        ('`Decimal("1.10")` and the string `"1.10"`', Decimal("1.10"), "1.10"),
        ('the dict keys `1` and `"1"`', {1: "x"}, {"1": "x"}),
    ]
    for label, left, right in merged:
        expect(
            key({"q": left}) != key({"q": right}),
            f"{label} in the inputs gave the same key — JSON merges them: use `wbc.tag_types`",
        )
    expect(
        key(lm_settings={"stop": ["x"]}) != key(lm_settings={"stop": ("x",)}),
        "a list and a tuple in `lm_settings` gave the same key — tag the settings' types too",
    )
    expect(
        key(lm_settings={"logit_bias": {1: 5}}) != key(lm_settings={"logit_bias": {"1": 5}}),
        'the dict keys `1` and `"1"` in `lm_settings` gave the same key — tag the settings too',
    )
    return "same call, same key; inputs, signature, model, settings and value types all change it."


# -- Task 2 -------------------------------------------------------------------------------------
DAMAGED_CREATED: tuple[Any, ...] = (
    float("nan"),
    float("inf"),
    float("-inf"),
    1e30,
    "yesterday",
    "0",
    None,
    True,
    -1.0,
    10**400,
    -(10**400),
)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 24 else f"{text[:8]}…({len(text)} digits)"


def _check_entry_age(entry_age: Callable[[dict, float], float | None]) -> None:
    now = 2_000_000.0
    for created in (*DAMAGED_CREATED, now + 5):
        age = call_student(
            f"`entry_age` with created={_short(created)}",
            entry_age,
            {"created": created, "value": 1},
            now,
            hint="a damaged timestamp has no age: return None, never raise",
        )
        expect(
            age is None,
            f"`entry_age` with created={_short(created)} gave {age!r} — only an int or float "
            "(not a bool) with 0 <= created <= now has an age; anything else gives None",
        )
    age = call_student("`entry_age` of an entry without `created`", entry_age, {"value": 1}, now)
    expect(age is None, f"`entry_age` of an entry without `created` gave {age!r}, not None")
    for created in (now - 7, now, 0):
        age = call_student("`entry_age`", entry_age, {"created": created}, now)
        expect(
            isinstance(age, int | float) and age == now - created,
            f"`entry_age` of an entry created at {created:g} with now={now:g} gave {age!r}",
        )


def _write(cache: Any, key: str, text: str | bytes) -> None:
    path = cache.path_for(key)
    path.write_bytes(text.encode() if isinstance(text, str) else text)


@ex.task(
    "disk_cache",
    "Task 2 · disk cache with expiry",
    points=3,
    needs=("DiskCache", "entry_age"),
    hints=(
        '`entry_age`: read `entry.get("created")`. A chained comparison `0 <= created <= now` is '
        "False for NaN, infinities, the future and huge ints, and never raises (`math.isfinite` "
        "raises `OverflowError` on a huge int).",
        "`type(created) in (int, float)` rules out bools, text and None in one test. In `get`, "
        "start with `entry = wbc.read_json_entry(self.path_for(key)) or {}`: a missing or "
        "damaged file then looks like an empty entry.",
        "`age = entry_age(entry, self.clock())`; `expired = self.ttl is not None and (age is None "
        'or age > self.ttl)`; `return None if expired else entry.get("value")`.',
    ),
)
def check_disk_cache(DiskCache: type, entry_age: Callable[[dict, float], float | None]) -> str:
    """Damaged timestamps have no age; get: round trip, persistence, damaged = miss, the TTL."""
    expect_callable(DiskCache, "DiskCache")
    expect_callable(entry_age, "entry_age")
    _check_entry_age(entry_age)
    with tempfile.TemporaryDirectory() as tmp:
        clock = ManualClock(1_000_000.0)
        cache = call_student("`DiskCache(...)`", DiskCache, Path(tmp) / "plain", clock=clock)
        got = call_student("`get` of a key that was never stored", cache.get, "never_stored")
        expect(got is None, f"`get` of a key that was never stored gave {got!r}, not None")
        call_student("`put`", cache.put, "k", {"answer": "42"})
        got = call_student("`get` after `put`", cache.get, "k")
        expect(got == {"answer": "42"}, f"`get` after `put(key, {{'answer': '42'}})` gave {got!r}")
        clock.advance(10**6)
        got = call_student("`get`", cache.get, "k")
        expect(
            got == {"answer": "42"},
            f"with `ttl=None` an entry 10**6 s old gave {got!r} — without a TTL nothing expires",
        )
        _write(cache, "nan", '{"key": "nan", "created": NaN, "value": "kept"}')
        got = call_student("`get`", cache.get, "nan")
        expect(
            got == "kept",
            f"with `ttl=None` an entry with a damaged timestamp gave {got!r} — without a TTL the "
            "age is never looked at",
        )
        reopened = call_student("`DiskCache(...)`", DiskCache, Path(tmp) / "plain", clock=clock)
        got = call_student("`get` from a new DiskCache on the same folder", reopened.get, "k")
        expect(
            got == {"answer": "42"},
            f"a new `DiskCache` on the same folder gave {got!r} — entries must be read from disk",
        )
        for label, content in (
            ("a truncated file", b'{"key": "k", "created": 0, "value": {"ans'),
            ("a file of invalid UTF-8", b"\xff\xfe\x00"),
            ("a JSON list", b"[1, 2]"),
            ("JSON nested 50,000 levels deep", b"[" * 50_000),
            ("an entry without a value", b'{"key": "k", "created": 0}'),
        ):
            _write(cache, "k", content)
            got = call_student(
                f"`get` on {label}",
                cache.get,
                "k",
                hint="a damaged file is a miss, never a crash: `wbc.read_json_entry` helps",
            )
            expect(got is None, f"`get` on {label} gave {got!r}, not a miss (None)")

        clock = ManualClock(1_000_000.0)
        timed = call_student(
            "`DiskCache(..., ttl=60)`", DiskCache, Path(tmp) / "ttl", ttl=60, clock=clock
        )
        call_student("`put`", timed.put, "k", "fresh")
        for advance, served in ((59, True), (1, True), (1, False)):
            clock.advance(advance)
            age = clock() - 1_000_000.0
            got = call_student("`get`", timed.get, "k")
            if served:
                expect(
                    got == "fresh",
                    f"with ttl=60, an entry {age:g} s old by `self.clock()` gave {got!r} — it is "
                    "still fresh (up to exactly `ttl`); take the age at `self.clock()`",
                )
            else:
                expect(
                    got is None,
                    f"with ttl=60, an entry {age:g} s old gave {got!r} — older than the TTL is a "
                    "miss (None)",
                )
        for created in ("NaN", "Infinity", "1e30", '"yesterday"', "1" + "0" * 400):
            _write(timed, "bad", f'{{"key": "bad", "created": {created}, "value": "stale?"}}')
            got = call_student(
                f'`get` of an entry with "created": {created[:12]}', timed.get, "bad"
            )
            expect(
                got is None,
                f'with a TTL, an entry with "created": {created[:12]} gave {got!r} — a damaged '
                "timestamp has no age, so the entry is a miss",
            )
    return "damaged timestamps have no age, damaged files are misses, and the TTL holds."


# -- Task 3 -------------------------------------------------------------------------------------
def _keyed(CachedPredict: type, one_key: bool = False) -> type:
    """The student's module with the check's own key (or one key for every call)."""

    class Keyed(CachedPredict):
        def cache_key(self, inputs: dict) -> str:
            return "one_key" if one_key else repr(sorted(inputs.items()))

    return Keyed


class _When(dspy.Signature):
    """Answer with a date."""

    question: str = dspy.InputField()
    answer: datetime.date = dspy.OutputField()


def _rate(program: Any) -> Any:
    rate = call_student(
        "`hit_rate`",
        lambda: program.hit_rate,
        hint="with no calls yet, return 0.0 instead of dividing by zero",
    )
    expect(isinstance(rate, int | float), f"`hit_rate` is {rate!r}, not a number")
    return rate


def _check_no_answer_lost(Keyed: type) -> None:
    """A failing encode or put warns and still returns the answer."""

    class BadEncode(Keyed):
        calls = 0

        def encode(self, prediction: dspy.Prediction) -> dict:
            BadEncode.calls += 1
            raise TypeError("a value JSON cannot hold")

    for label, error, cls in (
        ("`cache.put` raising OSError (a full disk)", OSError(28, "No space left"), Keyed),
        ("`cache.put` raising TypeError", TypeError("not JSON"), Keyed),
        ("`cache.put` raising ValueError", ValueError("out of range"), Keyed),
        ("`self.encode` raising TypeError", None, BadEncode),
    ):
        with dspy.context(lm=sim_lm(latency=0.0)), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            answer = call_student(
                f"your module with {label}",
                cls(cache=DictCache(error)),
                question="What is a full disk?",
                hint="catch it around encode and put, warn, and return the prediction",
            )
        expect(
            str(getattr(answer, "answer", "")).endswith("What is a full disk?"),
            f"with {label}, your module returned {answer!r} instead of the answer",
        )
        expect(
            cls is not BadEncode or BadEncode.calls > 0,
            "on a miss your module never called `self.encode(prediction)` — store what it "
            "returns with `self.cache.put`: it turns the outputs into JSON",
        )
        expect(
            caught,
            f"with {label}, your module said nothing — `warnings.warn(...)` that the answer "
            "was not cached",
        )


@ex.task(
    "cached_module",
    "Task 3 · cached module",
    points=3,
    needs=("CachedPredict",),
    hints=(
        "`hit_rate`: count the calls and divide only when there were some. `forward` starts "
        "with `key = self.cache_key(inputs)` and `cached = self.decode(self.cache.get(key))`.",
        "A hit is `cached is not None`: count it and return it. On a miss: count it, "
        "`prediction = self.predict(**inputs)`, then `self.cache.put(key, "
        "self.encode(prediction))`.",
        "Wrap encode + put in `try:` … `except (OSError, TypeError, ValueError) as exc: "
        'warnings.warn(f"the answer was not cached: {exc}")`, and `return prediction` after '
        "the `try`.",
    ),
)
def check_cached_module(CachedPredict: type) -> str:
    """Counters, no LM call on a hit, the key from cache_key, typed hits, no answer lost."""
    expect_callable(CachedPredict, "CachedPredict")
    Keyed = _keyed(CachedPredict)
    sim = sim_lm(latency=0.0)
    with dspy.context(lm=sim):
        program = call_student("`CachedPredict(cache=...)`", Keyed, cache=DictCache())
        rate = _rate(program)
        expect(rate == 0.0, f"`hit_rate` before any call is {rate!r} — it should be 0.0")
        answers = [
            call_student("calling your module", program, question=q).answer
            for q in ("What is DSPy?", "How do I optimize?", "What is DSPy?")
        ]
        expect(
            len(sim.history) < 3 or program.hits > 0,
            "three questions with one repeat called the LM 3 times and counted no hit: after a "
            "miss, store the answer with `self.cache.put(key, self.encode(prediction))`, and "
            "look calls up with `self.decode(self.cache.get(key))`",
        )
        expect(
            (program.hits, program.misses) == (1, 2),
            f"three questions with one repeat gave hits={program.hits}, misses={program.misses}",
        )
        expect(
            len(sim.history) == 2,
            f"the LM was called {len(sim.history)} times for 2 distinct questions — a hit must "
            "not call it",
        )
        expect(
            answers[2] == answers[0],
            f"the repeat was answered {answers[2]!r}, the first call {answers[0]!r}",
        )
        rate = _rate(program)
        expect(
            math.isclose(rate, 1 / 3),
            f"`hit_rate` after 1 hit and 2 misses is {rate!r} — it should be 1/3: "
            "hits / (hits + misses), a fraction, not a percentage",
        )
        shared = call_student("`CachedPredict(cache=...)`", Keyed, cache=program.cache)
        call_student("calling your module", shared, question="How do I optimize?")
        expect(
            (shared.hits, len(sim.history)) == (1, 2),
            "a second module on the same cache called the LM for a question already answered "
            "— store each miss with `self.cache.put(key, self.encode(prediction))`",
        )
    one_sim = sim_lm(latency=0.0)
    with dspy.context(lm=one_sim):
        one = _keyed(CachedPredict, one_key=True)(cache=DictCache())
        for question in ("First question?", "Second question?"):
            call_student("calling your module", one, question=question)
        expect(
            (one.hits, len(one_sim.history)) == (1, 1),
            "with a `cache_key` that gives every call the same key, the second call was not a "
            "hit — look the call up with `self.cache_key(inputs)`",
        )
    dated = sim_lm(latency=0.0, answers={"moon": "1969-07-20"})
    question = "When did people land on the moon?"
    with dspy.context(lm=dated):
        when = Keyed(_When, cache=DictCache())
        call_student("calling your module", when, question=question)
        hit = call_student("calling your module", when, question=question)
        expect(
            type(hit.answer) is datetime.date,
            f"a hit for an `answer: date` field returned {hit.answer!r} — return "
            "`self.decode(...)`, which restores the field's type",
        )
        when.cache.data[when.cache_key({"question": question})] = {"answer": "not a date"}
        call_student("calling your module", when, question=question)
        expect(
            len(dated.history) == 2,
            "an entry `self.decode` rejects (it gave None) was served — it is a miss: call the LM",
        )
    _check_no_answer_lost(Keyed)
    return "hits skip the LM and keep the fields' types; a failing cache still returns the answer."


# -- Going further (optional, no points) ------------------------------------------------------
DIFFERENT = [
    ("Convert 100 USD to EUR", "Convert 100 EUR to USD", "a word-order swap"),
    ("dog bites man", "man bites dog", "a word-order swap"),
    ("What is 2+2?", "What is 2-2?", "a changed operator"),
    ("What is 2+2?", "What is 2+3?", "a changed number"),
    (
        "Is the service available on Sundays in the city centre?",
        "Is the service not available on Sundays in the city centre?",
        "an added `not`",
    ),
    ("Какая столица Франции?", "Какая столица Испании?", "two different Cyrillic questions"),
    ("???", "!!!", "two questions that normalise to nothing"),
]


@ex.task(
    "similar",
    "Going further · similar questions",
    points=0,
    core=False,
    needs=("SimilarQuestionCache", "normalize_question", "question_similarity"),
    hints=(
        'Tokens: `re.findall(r"[^\\W_]+|[-+*/^=<>%]", text)` after `casefold()` and replacing '
        '`"n\'t"` with `" not"`. `[^\\W_]` is a letter or digit in any script.',
        "In `question_similarity`, return 0.0 first when either token list is empty, then when the "
        "numbers (tokens with a digit), the signs or the negation words of the two differ.",
        'For order: compare `set(tokens) | {f"{x} {y}" for x, y in zip(tokens, tokens[1:])}` of '
        "both with Jaccard (|A & B| / |A | B|). `get` keeps the best score and answers only if "
        "it is >= `self.threshold`.",
    ),
)
def check_similar_cache(
    SimilarQuestionCache: type,
    normalize_question: Callable[[str], str],
    question_similarity: Callable[[str, str], float],
) -> str:
    """Unicode-aware normalisation, rephrasings hit, every kind of different question misses."""
    expect_callable(SimilarQuestionCache, "SimilarQuestionCache")
    expect_callable(normalize_question, "normalize_question")
    expect_callable(question_similarity, "question_similarity")
    for text, want in [
        ("  What is   DSPy?! ", "what is dspy"),
        ("Isn't 2+2 = 4?", "is not 2 + 2 = 4"),
        ("Какая СТОЛИЦА?", "какая столица"),
    ]:
        got = call_student("`normalize_question`", normalize_question, text)
        expect(got == want, f"`normalize_question({text!r})` returned {got!r}")
    cache = call_student("`SimilarQuestionCache()`", SimilarQuestionCache)
    expect(
        call_student("`get` on an empty cache", cache.get, "anything") is None,
        "`get` on an empty cache should return None",
    )
    cache.put("What is the capital of France?", "Paris")
    for asked in ("what is the capital of france", "  WHAT is the capital of France?!"):
        got = call_student("`get`", cache.get, asked)
        expect(
            got == "Paris",
            f"`get({asked!r})` returned {got!r} — case, punctuation and spaces should not matter",
        )
    got = call_student("`get`", cache.get, "What is the capital of Spain?")
    expect(
        got is None,
        f"`get('What is the capital of Spain?')` returned {got!r} — a different question "
        "was answered from the cache",
    )
    for a, b, what in DIFFERENT:
        one = SimilarQuestionCache()
        one.put(a, "the answer to a")
        score = call_student("`question_similarity`", question_similarity, a, b)
        got = call_student("`get`", one.get, b)
        expect(
            got is None and score < 0.9,
            f"{what}: {b!r} scored {score!r} against {a!r} and got {got!r} — it needs its own "
            "answer",
        )
    for a, b, what in [DIFFERENT[2], DIFFERENT[3], DIFFERENT[4]]:
        score = call_student("`question_similarity`", question_similarity, a, b)
        expect(
            score == 0.0,
            f"{what}: {a!r} and {b!r} scored {score!r} — when numbers, signs or negation "
            "words differ, the similarity must be 0.0, whatever the threshold",
        )
    expect(
        call_student("`question_similarity`", question_similarity, "", "") == 0.0,
        "two empty questions scored above 0.0 — an empty question must never match",
    )
    loose = SimilarQuestionCache(threshold=0.3)
    loose.put("red green blue", "colours")
    loose.put("red green blue yellow", "four colours")
    got = call_student("`get`", loose.get, "red green blue yellow!")
    expect(
        got == "four colours",
        f"`get` returned {got!r} — the *most* similar stored question must win",
    )
    return "rephrasings hit; swapped words, operators, numbers, negations and empty questions miss."


hint, check_all = ex.hint, ex.check_all
