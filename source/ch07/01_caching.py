# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercise 1 — Caching LM calls, done properly
#
# A language-model call takes hundreds of milliseconds or more and, with a hosted provider, costs
# money. Traffic repeats itself, and a cache answers a repeat from a file in well under a
# millisecond. It is also easy to get subtly wrong: it can serve another model's answer, crash on
# a half-written file, or serve a stale answer forever. You build one that does none of that.
#
# **Learning objectives** — you will learn to
#
# * say what DSPy's built-in cache does and does not do;
# * build a cache key that changes whenever the answer could;
# * expire entries, and treat a damaged file or timestamp as a miss, never a crash;
# * put a DSPy module behind a cache that can fail without losing an answer;
# * measure a hit rate and the time a cache saves.
#
# **Prerequisites:** Python classes and exceptions, `json`, `pathlib`; a DSPy `Predict` call.
#
# | Part | You write | Time | Points |
# |---|---|---|---|
# | Read and run: DSPy's own cache | — | 2 min | — |
# | Task 1 | `make_cache_key` | 4 min | 2 |
# | Task 2 | `entry_age`, `DiskCache.get` | 8 min | 3 |
# | Task 3 | `CachedPredict.hit_rate`, `.forward` | 9 min | 3 |
# | Run: with and without the cache; check and submit | — | 2 min | — |
# | **Core path** (reading included) | | **≈ 25 min** | **8** |
# | Going further (optional, ungraded) | similar questions, DSPy's key, a stream | 30+ min | — |
#
# **How to work.** Run the self-check under each task: ✅ means that task's hidden tests pass too,
# ❌ says what your code did. Tasks are graded separately. Each task names its hint, e.g.
# `ex1.hint("disk_cache")` or `ex1.hint("Task 2")`; the last level is close to the answer.

# %%
import dspy_workbook as wb

lm = wb.setup()

# %%
import hashlib
import json
import re
import time
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import dspy

from dspy_workbook import caching as wbc
from dspy_workbook.checks import ex1

# %% [markdown]
# ## Before you build anything: DSPy's own cache
#
# DSPy caches every `dspy.LM` call in memory (on disk too, with `dspy.configure_cache`). It counts
# no hits, but a call it answered has `usage == {}` in the LM's history. `cache=False` skips it
# for one call; a `rollout_id` gets a *separate* entry for the same prompt.


# %%
def last_call_was_cached(lm: dspy.LM) -> bool:
    """True when the LM's most recent call was answered by DSPy's cache (no tokens used)."""
    return lm.history[-1]["usage"] == {}


builtin = dspy.Predict("question -> answer")
for config in [{}, {}, {"cache": False}, {"rollout_id": 1, "temperature": 1.0}]:
    builtin(question="What is a cache key?", config=config)
    print(f"config={config!s:38} answered from DSPy's cache? {last_call_was_cached(lm)}")

# %% [markdown]
# What it lacks is why you build your own: **expiry**, **invalidation** of one wrong answer,
# **hit counters**, and **a key you control**, computed from the inputs before a prompt is built
# (its own key has surprises: see Going further).
#
# ## Task 1 — a key that changes whenever the answer could
#
# A key must be **deterministic** (the same call, the same key, in every process: Python's
# `hash()` of a string is salted per process, SHA-256 of JSON text is not) and **complete**:
# the **inputs**, the **signature** (instructions and fields with their *types*; Task 3 passes it
# as one string), the **model** and the **LM settings** (`temperature`, `max_tokens`, ...).
#
# JSON merges values Python keeps apart. The given `wbc.tag_types` records the type wherever JSON
# would lose it; apply it before `json.dumps`:

# %%
for left, right in [(["a", "b"], ("a", "b")), ({1: "x"}, {"1": "x"}), (Decimal("1.10"), "1.10")]:
    same_json = json.dumps(left, default=str) == json.dumps(right, default=str)
    same_tags = wbc.tag_types(left) == wbc.tag_types(right)
    print(f"{left!r:>16} vs {right!r:<12} same JSON? {same_json!s:5}  same tag_types? {same_tags}")

# %% [markdown]
# Write `make_cache_key(inputs, *, signature, model, lm_settings=None)`. What is graded:
#
# * it returns a SHA-256 hex digest: 64 lowercase hex characters;
# * the same call gives the same key, also with the keys of `inputs` or `lm_settings` in another
#   order; `lm_settings=None` gives the same key as `{}`;
# * changing the inputs (even only their case), `signature`, `model` or `lm_settings` changes
#   the key;
# * values JSON would merge give different keys (a list and a tuple, `Decimal("1.10")` and
#   `"1.10"`, the dict keys `1` and `"1"`), in the inputs and in `lm_settings`.
#
# Stuck? `ex1.hint("key")`.


# %% nbgrader={"solution": true, "grade_id": "cache_key"}
def make_cache_key(
    inputs: dict, *, signature: str, model: str, lm_settings: dict | None = None
) -> str:
    """SHA-256 hex digest of all that can change the answer: inputs, signature, model, settings."""
    ### BEGIN SOLUTION
    payload = {
        "inputs": inputs,
        "signature": signature,
        "model": model,
        "lm_settings": lm_settings or {},
    }
    text = json.dumps(wbc.tag_types(payload), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
    ### END SOLUTION


# %%
ex1.check_cache_key(make_cache_key)

# %% nbgrader={"grade": true, "grade_id": "test_cache_key", "points": 2}
import re as _re

_base = dict(signature="question -> answer", model="sim/a", lm_settings={"temperature": 0.0})
_key = make_cache_key({"question": "What is DSPy?"}, **_base)
assert type(_key) is str and _re.fullmatch(r"[0-9a-f]{64}", _key), f"not SHA-256 hex: {_key!r}"
### BEGIN HIDDEN TESTS
from decimal import Decimal as _Decimal


def _k(inputs, **changes):
    try:
        got = make_cache_key(inputs, **{**_base, **changes})
    except Exception as exc:
        raise AssertionError(f"`make_cache_key` raised {exc!r} for inputs {inputs!r}") from exc
    assert type(got) is str and _re.fullmatch(r"[0-9a-f]{64}", got), (
        f"`make_cache_key` returned {got!r}: a key is 64 lowercase hex characters (SHA-256)"
    )
    return got


_q = {"question": "What is DSPy?"}
assert _k(_q) == _k({"question": "What is DSPy?"}), "the same call gave two different keys"
assert _k({"question": "q", "context": "c"}) == _k({"context": "c", "question": "q"}), (
    "the same inputs with their keys in another order gave different keys"
)
_settings = {"temperature": 0.0, "max_tokens": 9}
assert _k(_q, lm_settings=_settings) == _k(_q, lm_settings=dict(reversed(_settings.items()))), (
    "the same `lm_settings` with their keys in another order gave different keys"
)
assert _k(_q, lm_settings=None) == _k(_q, lm_settings={}), (
    "`lm_settings=None` and `lm_settings={}` gave different keys"
)
for _what, (_left, _right) in {
    "a question differing only in case": ((_q, {}), ({"question": "What is dspy?"}, {})),
    "another signature": ((_q, {}), (_q, {"signature": "question -> answer: int"})),
    "other instructions": ((_q, {}), (_q, {"signature": "question -> answer\nBe brief."})),
    "another model": ((_q, {}), (_q, {"model": "sim/c"})),
    "another temperature": ((_q, {}), (_q, {"lm_settings": {"temperature": 0.7}})),
    "an added max_tokens": (
        (_q, {}),
        (_q, {"lm_settings": {"temperature": 0.0, "max_tokens": 20}}),
    ),
    "a list and a tuple in the inputs": (({"q": ["a", "b"]}, {}), ({"q": ("a", "b")}, {})),
    "Decimal('1.10') and '1.10' in the inputs": (
        ({"q": _Decimal("1.10")}, {}),
        ({"q": "1.10"}, {}),
    ),
    "the dict keys 1 and '1' in the inputs": (({"q": {1: "x"}}, {}), ({"q": {"1": "x"}}, {})),
    "a list and a tuple in lm_settings": (
        (_q, {"lm_settings": {"stop": ["x"]}}),
        (_q, {"lm_settings": {"stop": ("x",)}}),
    ),
    "the dict keys 1 and '1' in lm_settings": (
        (_q, {"lm_settings": {"logit_bias": {1: 5}}}),
        (_q, {"lm_settings": {"logit_bias": {"1": 5}}}),
    ),
}.items():
    assert _k(_left[0], **_left[1]) != _k(_right[0], **_right[1]), f"{_what} gave the same key"
### END HIDDEN TESTS

# %% [markdown]
# ## Task 2 — a disk cache that expires entries and never trusts a file
#
# `DiskCache` keeps one JSON file per key in `directory/namespace/`:
# `{"key": ..., "created": ..., "value": ...}`. The given code:
#
# * `put` writes with `wbc.write_json_atomic`: a `.tmp` file in the same folder, then one
#   `os.replace`, so no reader ever sees half a file, even after a crash. `wbc.read_json_entry`
#   returns `None` for a missing or damaged file.
# * `path_for` refuses keys that are not plain file names: `../../x` never escapes the folder.
# * Time comes from `self.clock()`; tests move it with a `wbc.ManualClock`.
# * **Invalidation:** `invalidate(key)` (one wrong answer), `invalidate_older_than(seconds)` (a
#   nightly clean-up), `clear()`, and `namespace="v2"` for a change the key cannot see.
#
# A **timestamp can be damaged** too (`"created": NaN`, `1e30`, `"yesterday"`). With a naive
# `now - created > ttl`, NaN compares false and `1e30` gives a negative age: served forever.
#
# Write `entry_age` and `get`. What is graded:
#
# * `entry_age(entry, now)` is `now - entry["created"]` when `created` is an `int` or `float`
#   (not a `bool`) with `0 <= created <= now`, and `None` otherwise: missing, text (even `"0"`),
#   NaN, ±infinity, the future, before 1970, or an integer too large for a float
#   (`math.isfinite` raises `OverflowError` on it; a comparison does not).
# * `get(key)` returns the stored value, also from a new `DiskCache` on the same folder, and
#   `None` (a miss) when the file is missing or damaged, has no `"value"`, or (only if `self.ttl`
#   is not `None`) its age at `self.clock()` is `None` or over `self.ttl` (exactly `ttl` is fresh).
#
# Stuck? `ex1.hint("disk_cache")`.


# %% nbgrader={"solution": true, "grade_id": "disk_cache"}
KEY_PATTERN = re.compile(r"[0-9A-Za-z_-]{1,128}")  # keys and namespaces become file names


def entry_age(entry: dict, now: float) -> float | None:
    """Seconds since `entry["created"]`, or None when that timestamp is missing or damaged."""
    ### BEGIN SOLUTION
    created = entry.get("created")
    usable = type(created) in (int, float) and 0 <= created <= now  # False for NaN, bool, text
    return now - created if usable else None
    ### END SOLUTION


class DiskCache:
    """One JSON file per key in `directory/namespace/`; with a `ttl`, old entries are misses."""

    def __init__(
        self, directory: Path, *, namespace: str = "v1", ttl: float | None = None, clock=time.time
    ) -> None:
        if not KEY_PATTERN.fullmatch(namespace):
            raise ValueError(f"namespace must be a plain name such as 'v2', got {namespace!r}")
        self.directory = Path(directory) / namespace
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ttl = None if ttl is None else wbc.check_seconds("ttl", ttl)
        self.clock = clock
        wbc.remove_orphans(self.directory)  # .tmp files of killed writers (see Going further)

    def path_for(self, key: str) -> Path:
        """The file that holds `key`'s entry; a key that is not a plain file name is refused."""
        if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
            raise ValueError(f"a key becomes a file name: letters, digits, - and _ only; {key!r}")
        return self.directory / f"{key}.json"

    def put(self, key: str, value: Any) -> None:
        entry = {"key": key, "created": self.clock(), "value": value}
        wbc.write_json_atomic(self.path_for(key), entry)

    def get(self, key: str) -> Any | None:
        """The value stored under `key`, or None: missing, damaged, or older than `self.ttl`."""
        ### BEGIN SOLUTION
        entry = wbc.read_json_entry(self.path_for(key)) or {}
        age = entry_age(entry, self.clock())
        expired = self.ttl is not None and (age is None or age > self.ttl)
        return None if expired else entry.get("value")
        ### END SOLUTION

    def invalidate(self, key: str) -> None:
        self.path_for(key).unlink(missing_ok=True)

    def invalidate_older_than(self, seconds: float) -> int:
        """Delete every entry older than `seconds` or with a damaged timestamp; return how many."""
        seconds, now, removed = wbc.check_seconds("seconds", seconds), self.clock(), 0
        for path in self.directory.glob("*.json"):
            age = entry_age(wbc.read_json_entry(path) or {}, now)
            if age is None or age > seconds:
                path.unlink(missing_ok=True)
                removed += 1
        wbc.remove_orphans(self.directory)
        return removed

    def clear(self) -> int:
        """Delete every entry of this namespace (only); return how many."""
        paths = list(self.directory.glob("*.json"))
        for path in paths:
            path.unlink(missing_ok=True)
        wbc.remove_orphans(self.directory)
        return len(paths)


# %%
ex1.check_disk_cache(DiskCache, entry_age)

# %% nbgrader={"grade": true, "grade_id": "test_disk_cache", "points": 3}
import tempfile as _tempfile

import dspy_workbook.caching as _wbc

with _tempfile.TemporaryDirectory() as _tmp:
    _clock = _wbc.ManualClock()
    _cache = DiskCache(_tmp, ttl=60, clock=_clock)
    _cache.put("k1", {"answer": "42"})
    _clock.advance(61)
    assert _cache.get("k1") is None, "an entry older than the TTL must be a miss (None)"
    ### BEGIN HIDDEN TESTS
    from pathlib import Path as _Path

    def _run(what, fn, *args):
        try:
            return fn(*args)
        except Exception as exc:
            raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}") from exc

    _now = 1_000_000.0
    for _created in (
        float("nan"),
        float("inf"),
        float("-inf"),
        1e30,
        _now + 5,
        -5,
        10**400,
        -(10**400),
        "0",
        "yesterday",
        None,
        True,
        [1],
    ):
        _what = f"`entry_age` with created={_created!r:.40}"
        _age = _run(_what, entry_age, {"key": "k", "created": _created}, _now)
        assert _age is None, f"`entry_age` with created={_created!r:.40} gave {_age!r}, not None"
    _age = _run("`entry_age`", entry_age, {"value": 1}, _now)
    assert _age is None, f"`entry_age` of an entry without `created` gave {_age!r}, not None"
    for _created, _want in ((_now - 3, 3), (_now, 0), (0, _now), (999_990, 10)):
        _age = _run("`entry_age`", entry_age, {"created": _created}, _now)
        assert isinstance(_age, int | float) and _age == _want, (
            f"`entry_age` of created={_created!r} at now={_now} gave {_age!r}, not {_want}"
        )

    _clock = _wbc.ManualClock()
    _at_ttl = DiskCache(_Path(_tmp) / "at_ttl", ttl=60, clock=_clock)
    _at_ttl.put("k1", {"answer": "42"})
    _clock.advance(60)
    _got = _run("`get`", _at_ttl.get, "k1")
    assert _got == {"answer": "42"}, f"an entry exactly `ttl` seconds old gave {_got!r}"
    _plain = DiskCache(_Path(_tmp) / "plain", clock=_clock)
    _got = _run("`get`", _plain.get, "never_stored")
    assert _got is None, f"`get` of a key never stored gave {_got!r}, not None"
    _plain.put("k2", ["a", 1, None, {"x": 2.5}])
    _clock.advance(10**6)
    _got = _run("`get`", _plain.get, "k2")
    assert _got == ["a", 1, None, {"x": 2.5}], f"with ttl=None an old entry gave {_got!r}"
    _plain.path_for("nan").write_text('{"key": "nan", "created": NaN, "value": "kept"}')
    _got = _run("`get`", _plain.get, "nan")
    assert _got == "kept", f"with ttl=None an entry with a damaged timestamp gave {_got!r}"
    _got = _run("`get`", DiskCache(_Path(_tmp) / "plain", clock=_clock).get, "k2")
    assert _got == ["a", 1, None, {"x": 2.5}], (
        f"a new `DiskCache` on the same folder gave {_got!r}: entries must persist on disk"
    )
    _path = _plain.path_for("k2")
    for _what, _content in (
        ("a truncated file", b'{"key": "k2", "created": 0, "val'),
        ("a file of invalid UTF-8", b"\xff\xfe\x00garbage"),
        ("a JSON list", b"[1, 2, 3]"),
        ("JSON nested 50,000 levels deep", b"[" * 50_000 + b"]" * 50_000),
        ("an entry without a value", b'{"key": "k2", "created": 0}'),
    ):
        _path.write_bytes(_content)
        _got = _run("`get`", _plain.get, "k2")
        assert _got is None, f"`get` on {_what} gave {_got!r}, not a miss (None)"

    _fresh = DiskCache(_Path(_tmp) / "ttl", ttl=10, clock=_clock)
    _fresh.put("ok", "fresh")
    _clock.advance(9)
    _got = _run("`get`", _fresh.get, "ok")
    assert _got == "fresh", f"an entry 9 s old with ttl=10 gave {_got!r}"
    _clock.advance(2)
    _got = _run("`get`", _fresh.get, "ok")
    assert _got is None, f"an entry 11 s old with ttl=10 gave {_got!r}, not a miss (None)"
    for _created in ("NaN", "Infinity", "1e30", '"yesterday"', "1" + "0" * 400, "true", "null"):
        _fresh.path_for("bad").write_text(
            f'{{"key": "bad", "created": {_created}, "value": "stale forever?"}}'
        )
        _got = _run("`get`", _fresh.get, "bad")
        assert _got is None, (
            f'with a TTL, an entry with "created": {_created[:12]} gave {_got!r}, not a miss'
        )
    ### END HIDDEN TESTS

# %% [markdown]
# Expiry and invalidation, with a clock moved by hand:

# %%
clock = wbc.ManualClock()
ttl_cache = DiskCache(wbc.fresh_cache_dir("ex1/ttl_demo"), ttl=60, clock=clock)
ttl_cache.put("capital_france", {"answer": "Paris"})
clock.advance(61)
print("after 61 s:", ttl_cache.get("capital_france"))
for created in [float("nan"), 1e30, "yesterday"]:
    wbc.write_json_atomic(ttl_cache.path_for("damaged"), {"created": created, "value": "?"})
    print(f"created={created!r:<12} served? {ttl_cache.get('damaged') is not None}")
print("removed by the nightly clean-up:", ttl_cache.invalidate_older_than(3600))
v2 = DiskCache(ttl_cache.directory.parent, namespace="v2")
print("namespace v2 sees v1's entries?", v2.get("capital_france") is not None)

# %% [markdown]
# ## Task 3 — a DSPy module that checks the cache first
#
# `CachedPredict` holds a `dspy.Predict` (with DSPy's cache off, so a miss reaches the model)
# and a cache with `get(key)` and `put(key, value)`, such as your `DiskCache`. Given:
#
# * `cache_key(inputs)` calls your `make_cache_key` with `wbc.describe_program(self.predict)`
#   (instructions, field types and descriptions, demos, adapter) and the model and settings of
#   the LM that will answer;
# * `encode(prediction)` turns the outputs into JSON (`TypeError` if it cannot); `decode(stored)`
#   turns them back into a `dspy.Prediction` with the fields' own types (a `date` stays a
#   `date`), or gives `None` when `stored` is `None` or does not fit the signature.
#
# Write `hit_rate` and `forward`. What is graded:
#
# * `hit_rate` is `hits / (hits + misses)`, and `0.0` before the first call;
# * `forward(**inputs)` looks up `self.cache_key(inputs)`. When `self.decode(...)` of what the
#   cache holds is not `None`, that is a **hit**: add one to `self.hits` and return it, **without
#   calling the LM**;
# * otherwise it is a **miss**: add one to `self.misses`, call `self.predict(**inputs)`, store
#   `self.encode(prediction)` under the key with `self.cache.put`, and return the prediction;
# * **never lose an answer you paid for**: when encoding or storing raises `OSError` (a full disk),
#   `TypeError` or `ValueError`, `warnings.warn(...)` that the answer was not cached, and return
#   the prediction all the same.
#
# It is graded with the test's own key and an in-memory cache (`wbc.DictCache`), so Tasks 1–2
# cannot cost points here. Stuck? `ex1.hint("cached_module")`.


# %% nbgrader={"solution": true, "grade_id": "cached_module"}
class CachedPredict(dspy.Module):
    """`dspy.Predict` behind a cache: repeated calls are answered without the LM."""

    def __init__(self, signature: str | type[dspy.Signature] = "question -> answer", *, cache: Any):
        super().__init__()
        self.predict = dspy.Predict(signature, cache=False)
        self.cache = cache
        self.hits = 0
        self.misses = 0

    def cache_key(self, inputs: dict) -> str:
        """The key of a call with `inputs`: everything that could change its answer or its type."""
        lm = wbc.lm_in_use(self.predict)
        program = wbc.describe_program(self.predict)
        return make_cache_key(inputs, signature=program, model=lm.model, lm_settings=lm.kwargs)

    def encode(self, prediction: dspy.Prediction) -> dict:
        return wbc.encode_outputs(self.predict.signature, prediction)

    def decode(self, stored: Any) -> dspy.Prediction | None:
        return wbc.decode_outputs(self.predict.signature, stored)

    @property
    def hit_rate(self) -> float:
        """Hits / calls so far; 0.0 before the first call."""
        ### BEGIN SOLUTION
        return self.hits / max(self.hits + self.misses, 1)
        ### END SOLUTION

    def forward(self, **inputs: Any) -> dspy.Prediction:
        """Answer from the cache if possible, else from the LM (and remember the answer)."""
        ### BEGIN SOLUTION
        key = self.cache_key(inputs)
        cached = self.decode(self.cache.get(key))
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        prediction = self.predict(**inputs)
        try:
            self.cache.put(key, self.encode(prediction))
        except (OSError, TypeError, ValueError) as exc:
            warnings.warn(f"the answer was not cached ({type(exc).__name__}: {exc})", stacklevel=2)
        return prediction
        ### END SOLUTION


# %%
ex1.check_cached_module(CachedPredict)

# %% nbgrader={"grade": true, "grade_id": "test_cached_module", "points": 3}
import dspy as _dspy

import dspy_workbook as _wb
import dspy_workbook.caching as _wbc


class _Keyed(CachedPredict):  # the test's own key: Task 1 cannot cost points here
    def cache_key(self, inputs):
        return repr(sorted(inputs.items()))


_sim = _wb.sim_lm(latency=0.01)
with _dspy.context(lm=_sim):
    _program = _Keyed(cache=_wbc.DictCache())
    _answers = [_program(question=q).answer for q in ("What is DSPy?", "Why?", "What is DSPy?")]
_seen = (_program.hits, _program.misses, len(_sim.history))
assert _seen == (1, 2, 2), f"hits, misses, LM calls = {_seen}, not (1, 2, 2)"
### BEGIN HIDDEN TESTS
assert (_program.hits, _program.misses) == (1, 2), (
    f"three questions with one repeat gave hits={_program.hits}, misses={_program.misses}"
)
assert _answers[2] == _answers[0] and len(_sim.history) == 2, (
    f"the LM was called {len(_sim.history)} times for 2 distinct questions: a hit must not call it"
)
import datetime as _datetime
import warnings as _warnings


def _run(what, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}") from exc


def _rate(program):
    rate = _run("`hit_rate`", lambda: program.hit_rate)
    assert isinstance(rate, int | float), f"`hit_rate` is {rate!r}, not a number"
    return rate


assert _rate(_Keyed(cache=_wbc.DictCache())) == 0.0, "`hit_rate` before any call is not 0.0"
assert abs(_rate(_program) - 1 / 3) < 1e-9, (
    f"`hit_rate` after 1 hit and 2 misses is {_program.hit_rate!r}, not 1/3"
)
with _dspy.context(lm=_sim):
    _shared = _Keyed(cache=_program.cache)
    _got = _run("your module", _shared, question="Why?").answer
assert (_shared.hits, _shared.misses, _sim.engine.stats.calls) == (1, 0, 2), (
    "a second module on the same cache called the LM: a miss must store the answer with "
    f"`self.cache.put` (hits={_shared.hits}, misses={_shared.misses})"
)
assert _got == _answers[1], f"the stored answer came back as {_got!r}, not {_answers[1]!r}"


class _OneKey(CachedPredict):  # every call gets one key: forward must use self.cache_key
    def cache_key(self, inputs):
        return "the_same_key"


_sim2 = _wb.sim_lm(latency=0.01)
with _dspy.context(lm=_sim2):
    _one = _OneKey(cache=_wbc.DictCache())
    _run("your module", _one, question="First question?")
    _run("your module", _one, question="Second question?")
assert (_one.hits, len(_sim2.history)) == (1, 1), (
    "with a `cache_key` that gives every call the same key, the second call was not a hit: "
    "look the call up with `self.cache_key(inputs)`"
)


class _When(_dspy.Signature):
    """Answer with a date."""

    question: str = _dspy.InputField()
    answer: _datetime.date = _dspy.OutputField()


_dated = _wb.sim_lm(latency=0.01, answers={"moon": "1969-07-20"})
_moon = "When did people land on the moon?"
with _dspy.context(lm=_dated):
    _when = _Keyed(_When, cache=_wbc.DictCache())
    _miss, _hit = (_run("your module", _when, question=_moon) for _ in range(2))
    assert (_when.hits, _when.misses, len(_dated.history)) == (1, 1, 1), (
        f"a repeated date question gave hits={_when.hits}, misses={_when.misses}"
    )
    assert type(_hit.answer) is _datetime.date and _hit.answer == _miss.answer, (
        f"a hit for an `answer: date` field returned {_hit.answer!r}: return `self.decode(...)`"
    )
    _when.cache.data[_when.cache_key({"question": _moon})] = {"answer": "not a date"}
    _run("your module", _when, question=_moon)
    assert (_when.misses, len(_dated.history)) == (2, 2), (
        "an entry that `self.decode` rejects was served: it is a miss, and the LM answers"
    )


class _BadEncode(_Keyed):
    calls = 0

    def encode(self, prediction):
        _BadEncode.calls += 1
        raise TypeError("a value JSON cannot hold")


for _error, _cls in (
    (OSError(28, "No space left on device"), _Keyed),
    (PermissionError(13, "Read-only folder"), _Keyed),
    (TypeError("not JSON"), _Keyed),
    (ValueError("out of range"), _Keyed),
    (None, _BadEncode),
):
    _name = f"`put` raising {type(_error).__name__}" if _error else "`encode` raising TypeError"
    with _dspy.context(lm=_sim), _warnings.catch_warnings(record=True) as _caught:
        _warnings.simplefilter("always")
        try:
            _answer = _cls(cache=_wbc.DictCache(_error))(question="What is a full disk?")
        except Exception as _exc:
            raise AssertionError(
                f"with {_name}, your module raised {_exc!r}: the answer is lost"
            ) from _exc
    assert getattr(_answer, "answer", "").endswith("What is a full disk?"), (
        f"with {_name}, your module returned {_answer!r} instead of the answer"
    )
    assert _cls is not _BadEncode or _BadEncode.calls, (
        "on a miss your module never called `self.encode(prediction)`: store what it returns"
    )
    assert _caught, f"with {_name}, your module said nothing: `warnings.warn(...)`"
### END HIDDEN TESTS

# %% [markdown]
# ## With and without the cache
#
# The seed's three queries, one of them a repeat, through your whole stack (key, disk cache,
# module) on the course model, and again through a plain `Predict` with every cache off. One
# warm-up call first, so loading the model is not counted. The times depend on your machine.

# %% tags=["nbval-ignore-output"]
questions = ["What is DSPy?", "How do I optimize?", "What is DSPy?"]  # the third is a repeat
program = CachedPredict(cache=DiskCache(wbc.fresh_cache_dir("ex1/three_queries"), ttl=24 * 3600))
uncached = dspy.Predict("question -> answer", cache=False)
uncached(question="Warm-up: say hello.")
for name, module in [("with our cache", program), ("without any cache", uncached)]:
    start = time.perf_counter()
    answers = [module(question=q).answer for q in questions]
    print(f"{name:18}: {time.perf_counter() - start:.2f} s for {len(questions)} questions")

# %%
print(f"Cache hits: {program.hits}, misses: {program.misses}, hit rate: {program.hit_rate:.1%}")

# %% [markdown]
# The saving is the one skipped call: small and noisy with the fast local model. Against a hosted
# model every hit saves a round trip and its tokens, and real traffic repeats far more (Going
# further measures such a stream).

# %% [markdown]
# ## Going further (optional, ungraded)
#
# Nothing below is graded, and nothing below is needed for full marks. Run All with these parts
# left undone still reaches `check_all()` at the end.
#
# ### DSPy's key: sync against async, and the endpoint
#
# DSPy puts the name of the function that made the call into the key (`litellm_completion` or
# `alitellm_completion`), so an answer you warmed with `predict(...)` is a *miss* for
# `await predict.acall(...)`. Warm the cache the way your server will call it.

# %%
answer = await builtin.acall(question="What is a cache key?")
print("acall after a sync warm-up -> cached?", last_call_was_cached(lm))
answer = await builtin.acall(question="What is a cache key?")
print("second acall              -> cached?", last_call_was_cached(lm))

# %% [markdown]
# DSPy also drops `api_key`, `api_base` and `base_url` before hashing. Two servers that both call
# their model `"openai/llama-3"` (your laptop and the production cluster) share entries. Put the
# endpoint into the model name, or a `rollout_id`, if they can disagree.

# %%
from dspy.clients.execution import IGNORED_CACHE_KEYS

request = {"model": "openai/llama-3", "messages": [{"role": "user", "content": "hi"}]}
key_a = dspy.cache.cache_key({**request, "api_base": "http://laptop:8000"}, IGNORED_CACHE_KEYS)
key_b = dspy.cache.cache_key(
    {**request, "api_base": "https://prod.example.com"}, IGNORED_CACHE_KEYS
)
print("ignored in the key:", IGNORED_CACHE_KEYS)
print("two endpoints, same key?", key_a == key_b)

# %% [markdown]
# Your key, in contrast, sees the output *types* and the adapter through `describe_program`:
# computing a key makes no LM call, so this runs on any model.

# %%
question = {"question": "How many?"}
keys = {
    signature: CachedPredict(signature, cache=wbc.DictCache()).cache_key(question)
    for signature in [
        "question -> answer",
        "question -> answer: int",
        "question -> answer: list[str]",
    ]
}
with dspy.context(adapter=dspy.ChatAdapter()):  # the course uses the JSON adapter
    keys["question -> answer, ChatAdapter"] = CachedPredict(cache=wbc.DictCache()).cache_key(
        question
    )
for label, key in keys.items():
    print(
        f"{label:34} -> {'the first key' if key == keys['question -> answer'] else 'a key of its own'}"
    )

# %% [markdown]
# ### Why the atomic write: a file cut in half, and writers that were killed
#
# Cut an entry in half (what a crash in the middle of a plain `json.dump` leaves behind) and read
# it again: it is a miss, not a crash. A writer killed between its `.tmp` file and `os.replace`
# leaves an orphan that nothing else would remove; `wbc.remove_orphans` deletes those older than a
# minute (a young one may belong to a writer still running), and `DiskCache` calls it when it
# opens and cleans up.

# %%
import os

demo_dir = wbc.fresh_cache_dir("ex1/truncate_demo")
entry_path = demo_dir / "entry.json"
wbc.write_json_atomic(entry_path, {"value": {"answer": "DSPy is a framework for programming LMs."}})
print("intact   :", wbc.read_json_entry(entry_path))
entry_path.write_bytes(entry_path.read_bytes()[:20])
print("truncated:", wbc.read_json_entry(entry_path))
orphan = demo_dir / ".entry.json.x1.tmp"
orphan.write_text('{"value": {"ans')
print("orphans removed now:", wbc.remove_orphans(demo_dir), "| an hour later:", end=" ")
hour_ago = time.time() - 3600
os.utime(orphan, (hour_ago, hour_ago))
print(wbc.remove_orphans(demo_dir))

# %% [markdown]
# ### A cache that fails must not cost the answer
#
# Here the cache folder is replaced by a file, so every write fails with an `OSError`. Your
# module warns and still answers.

# %%
blocked = DiskCache(wbc.fresh_cache_dir("ex1/blocked"))
blocked.directory.rmdir()
blocked.directory.write_text("not a folder")  # every write into it now fails
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    reply = CachedPredict(cache=blocked)(question="What is DSPy?")
print(
    "answered:", bool(reply.answer), "| warnings:", [str(w.message).split(" (")[0] for w in caught]
)

# %% [markdown]
# ### A realistic stream: latency per call and hit rate over time
#
# Real traffic is skewed: a handful of questions make most of it. `wbc.zipf_stream` draws 30
# questions from a list of 12, the k-th most popular with weight 1/k (seeded, so the same stream
# every run). Every distinct question is a miss the first time and a hit after that. About 10
# calls reach the model: 5–30 s on the local model; a progress bar shows them.

# %% tags=["nbval-ignore-output"]
stream = wbc.zipf_stream(n=30, seed=0)
streamed = CachedPredict(cache=DiskCache(wbc.fresh_cache_dir("ex1/stream")))
records = wbc.run_stream(streamed, stream)

# %%
print(f"{len(stream)} calls, {len(set(stream))} distinct questions")
print(f"Cache hits: {streamed.hits}, misses: {streamed.misses}, hit rate: {streamed.hit_rate:.1%}")

# %% tags=["nbval-ignore-output"]
from IPython.display import display

from dspy_workbook.stats import summary_table

wbc.show_figure(wbc.stream_figure(records))
display(
    summary_table(
        {
            "hits": [r.seconds for r in records if r.hit],
            "misses": [r.seconds for r in records if not r.hit],
        }
    )[["count", "p50 ms", "p90 ms"]]
)

# %% [markdown]
# The cumulative hit rate climbs as the popular questions come back, then levels off near the
# share of repeats in the traffic: the best *any* exact-match cache can do on this stream.
#
# ### Hit latency: ours against DSPy's
#
# One warm-up miss each, then 100 timed hits of each kind (a few seconds; progress bars show
# them). The DSPy disk hit empties DSPy's memory tier before every call, so each hit really
# comes from disk.
#
# DSPy computes its key from the finished request, so even a hit pays for building the prompt
# first (with the JSON adapter, a pydantic JSON schema too), then parses and deep-copies the
# cached reply. Our key is computed from the inputs before any of that, so a hit is one small
# file read. The price: our key must name everything the prompt depends on, which is why
# `describe_program` lists the fields' types, the adapter and the demos. DSPy's key sees the
# actual prompt, so it notices anything new that shapes it without being told.

# %% tags=["nbval-ignore-output"]
hit_question = {"question": "What is DSPy?"}
ours = CachedPredict(cache=DiskCache(wbc.fresh_cache_dir("ex1/latency")))
ours(**hit_question)
wbc.use_dspy_disk_cache("ex1/dspy_latency")
theirs = dspy.Predict("question -> answer")
theirs(**hit_question)
samples = {
    "our DiskCache hit": wbc.time_calls(lambda: ours(**hit_question), 100, desc="ours"),
    "DSPy memory hit": wbc.time_calls(lambda: theirs(**hit_question), 100, desc="DSPy memory"),
    "DSPy disk hit": wbc.time_calls(
        lambda: theirs(**hit_question),
        100,
        desc="DSPy disk",
        before_each=dspy.cache.reset_memory_cache,
    ),
}
display(summary_table(samples)[["count", "p50 ms", "p90 ms", "p99 ms"]])
wbc.use_dspy_memory_cache()  # back to the course default

# %% [markdown]
# ### An optional task: matching *similar* questions, safely
#
# This is the seed's advanced challenge. It has a self-check and no points.
#
# "What is DSPy?", "what is dspy" and "  What is DSPy ?? " are the same question, but an
# exact-match key sees three different strings. A **normalised** key (case folded, punctuation
# dropped, whitespace collapsed) catches these for free. Going further, to "close enough"
# questions, takes a **similarity measure** and a **threshold**, and this is where caching gets
# dangerous: a wrong hit is far worse than a miss, because it serves a confident, wrong answer.
#
# Here is the textbook measure, token Jaccard (|A ∩ B| / |A ∪ B| over the sets of words, with
# words from `[a-z0-9]+`), on pairs that need *different* answers:


# %%
def naive_similarity(a: str, b: str) -> float:
    """Token Jaccard over [a-z0-9]+ words: the textbook measure (don't use this)."""
    words_a, words_b = (set(re.findall(r"[a-z0-9]+", text.lower())) for text in (a, b))
    if not words_a and not words_b:
        return 1.0
    return len(words_a & words_b) / len(words_a | words_b)


different_questions = [
    ("Convert 100 USD to EUR", "Convert 100 EUR to USD"),
    ("Does the dog bite the man?", "Does the man bite the dog?"),
    ("What is 2+2?", "What is 2-2?"),
    (
        "Is the service available on Sundays in the city centre?",
        "Is the service not available on Sundays in the city centre?",
    ),
    ("Какая столица Франции?", "Какая столица Испании?"),
    ("東京の人口は?", "大阪の天気は?"),
]
for a, b in different_questions:
    print(f"{naive_similarity(a, b):.2f}  {a!r} vs {b!r}")

# %% [markdown]
# Every one of these would be served the other's answer at a threshold of 0.9 or less:
#
# * **word order**: a set of words cannot see "USD to EUR" versus "EUR to USD";
# * **operators**: `[a-z0-9]+` drops `+` and `-`, so "2+2" and "2-2" are both "2 2";
# * **negation**: one added "not" in a ten-word question still scores 0.90;
# * **non-Latin scripts**: `[a-z0-9]+` drops every Cyrillic, Greek, Chinese or Japanese letter.
#   Both questions normalise to almost nothing, and two *empty* questions count as identical.
#
# Write a safer version. What the self-check checks (at the default threshold 0.9):
#
# * `normalize_question(text)`: case folded (`str.casefold()`), `"n't"` written as `" not"`, then
#   the tokens, one space apart: runs of letters or digits **in any script** (`[^\W_]+`), and each
#   of the signs `+ - * / ^ = < > %` as a token of its own.
#   `"Isn't 2+2 = 4?"` → `"is not 2 + 2 = 4"`.
# * `question_similarity(a, b)` is between 0 and 1; it is **0.0** when either question normalises
#   to nothing, and when the two differ in their **numbers**, their **signs**, or their
#   **negation words** (`not`, `no`, `never`, `none`, `nothing`, `nobody`, `neither`, `nor`,
#   `without`, `cannot`); it is **1.0** when both normalise to the same text; and it is **order
#   aware**: a question with two words swapped scores below 0.9. One measure that does this:
#   Jaccard over the set of words *plus* the set of adjacent word pairs.
# * `SimilarQuestionCache.get(question)` returns the answer of the **most similar** stored
#   question if that similarity is ≥ `self.threshold`, else `None`.
#
# Stuck? `ex1.hint("similar")`.

# %% nbgrader={"solution": true, "grade_id": "similar_cache"}
NEGATIONS = frozenset(
    {"not", "no", "never", "none", "nothing", "nobody", "neither", "nor", "without", "cannot"}
)
SIGNS = frozenset("+-*/^=<>%")


def normalize_question(text: str) -> str:
    """Case-folded words (any script), numbers and signs: "Isn't 2+2=4?" -> 'is not 2 + 2 = 4'."""
    ### BEGIN SOLUTION
    text = text.casefold().replace("n't", " not").replace("n\u2019t", " not")
    return " ".join(re.findall(r"[^\W_]+|[-+*/^=<>%]", text))
    ### END SOLUTION


def question_similarity(a: str, b: str) -> float:
    """0.0 to 1.0, order-aware; 0.0 unless numbers, signs and negations agree, or if empty."""
    ### BEGIN SOLUTION
    tokens_a, tokens_b = normalize_question(a).split(), normalize_question(b).split()
    if not tokens_a or not tokens_b:
        return 0.0

    def must_agree(tokens: list[str]) -> tuple:
        numbers = [t for t in tokens if any(c.isdigit() for c in t)]
        return (
            numbers,
            [t for t in tokens if t in SIGNS],
            sorted(t for t in tokens if t in NEGATIONS),
        )

    if must_agree(tokens_a) != must_agree(tokens_b):
        return 0.0

    def words_and_pairs(tokens: list[str]) -> set[str]:
        return set(tokens) | {f"{x} {y}" for x, y in zip(tokens, tokens[1:], strict=False)}

    features_a, features_b = words_and_pairs(tokens_a), words_and_pairs(tokens_b)
    return len(features_a & features_b) / len(features_a | features_b)
    ### END SOLUTION


class SimilarQuestionCache:
    """An in-memory cache that also answers questions close enough to one it has seen."""

    def __init__(self, threshold: float = 0.9) -> None:
        if not (isinstance(threshold, int | float) and 0.0 < threshold <= 1.0):
            raise ValueError(f"threshold is a similarity in (0, 1], got {threshold!r}")
        self.threshold = threshold
        self.entries: dict[str, Any] = {}  # normalised question -> answer

    def put(self, question: str, answer: Any) -> None:
        """Remember `answer` for `question` (stored under its normalised form)."""
        self.entries[normalize_question(question)] = answer

    def get(self, question: str) -> Any | None:
        """The answer of the most similar stored question if similar enough, else None."""
        ### BEGIN SOLUTION
        best_score, best_answer = 0.0, None
        for stored, answer in self.entries.items():
            score = question_similarity(question, stored)
            if score > best_score:
                best_score, best_answer = score, answer
        return best_answer if best_score >= self.threshold else None
        ### END SOLUTION


# %%
ex1.check_similar_cache(SimilarQuestionCache, normalize_question, question_similarity)

# %%
try:
    for a, b in different_questions:
        print(
            f"naive {naive_similarity(a, b):.2f} -> ours {question_similarity(a, b):.2f}  "
            f"{a!r} vs {b!r}"
        )
    similar = SimilarQuestionCache(threshold=0.9)
    similar.put("What is the capital of France?", "Paris")
    for asked in [
        "what is the capital of france",
        "  WHAT is the capital of France?!  ",
        "What is the capital of Spain?",
        "What's the capital of France?",
    ]:
        print(
            f"{asked!r:40} similarity "
            f"{question_similarity(asked, 'What is the capital of France?'):.2f}"
            f" -> {similar.get(asked)!r}"
        )
except NotImplementedError:
    print("(the optional similarity task is not done — skipped)")

# %% [markdown]
# The last line shows what the safety costs. "What's" normalises to the two words "what s", so
# a harmless rephrasing is a miss. That is the right way to fail. Before you lower the threshold,
# look at what else would start to match. Embeddings (semantic similarity) catch more rephrasings,
# but they also happily match France with Spain. Production systems that serve "similar" answers
# add a second check, such as the same named entities, or a small model that asks "are these the
# same question?".
#
# ### When *not* to cache, and production notes
#
# * **Non-deterministic on purpose.** If you sample at `temperature > 0` to get *variety*
#   (brainstorming, several candidates to choose from), a cache that returns the same text every
#   time defeats the purpose. Key on a sample index (DSPy's `rollout_id`) or don't cache.
# * **Answers that depend on time or state.** "What's the weather?", or anything grounded in a
#   retriever whose documents change. Either put the state into the key (a document version, the
#   date) or use a short TTL.
# * **TTL choices.** Tie the TTL to how fast the *source of truth* changes, not to disk space.
#   Minutes for live data, days for news, months for definitions, no TTL for pure functions of
#   the input with a pinned model. Add a namespace bump to every deploy that changes a prompt.
# * **Cache stampede.** When a popular entry expires, a hundred concurrent requests all miss at
#   once and all call the model. The cures: one in-flight call per key (a lock or a shared future
#   per key), serving the stale value while one worker refreshes it, and adding random jitter to
#   TTLs so entries don't all expire together.
# * **Sharing across processes.** One-file-per-key plus atomic `os.replace` is safe for several
#   processes on *one local disk*. Network file systems (NFS) and many writers need a real store:
#   SQLite (DSPy's `diskcache`), Redis, or a database. Per-process memory caches are not shared,
#   so each worker warms its own. After a power cut, even a renamed file can be empty unless it
#   was `os.fsync`-ed before the rename; a cache can accept that (an empty file is a miss), a
#   database cannot.
# * **Personal data.** A cache file is a copy of the user's question and the model's answer,
#   which may contain names, emails or health details. It needs the same care as the database:
#   retention limits (TTL + `invalidate_older_than`), deletion on request (`invalidate`),
#   permissions on the folder, and no caching at all for some inputs. A hashed *key* does not
#   protect anything, because the value is stored in the clear.
# * **Security.** Never unpickle cache files you did not write. That is why this cache stores
#   JSON, and why DSPy offers `restrict_pickle=True`. And never let a key become a path unchecked.
#
# ## Summary
#
# You used DSPy's built-in cache and its history, and saw where they stop (no TTL, no counters,
# sync/async keys, endpoint-blind keys). You built a key that covers everything that changes the
# answer and its type, a disk cache whose writes are atomic and for which a damaged file or
# timestamp costs one miss instead of a crash or a stale answer forever, and a DSPy module behind
# it that counts its hits and never loses an answer when the cache fails.
#
# ## Questionnaire
#
# 1. Why is Python's `hash()` a bad cache key, and `json.dumps(..., sort_keys=True)` + SHA-256 a
#    good one?
# 2. Name four things besides the inputs that must be in the key of an LM call, and one thing
#    DSPy's own key leaves out.
# 3. Why must the temporary file of an atomic write be in the same folder as the target? What
#    does `os.replace` do when it is not?
# 4. A cache entry says `"created": NaN`. With a TTL of one hour, what does a naive
#    `now - created > ttl` do with it, and what should happen?
# 5. Why are orphan `.tmp` files removed by *age* rather than all at once?
# 6. The disk is full. What should `CachedPredict` do with the answer it just got, and why?
# 7. Give two pairs of questions that token Jaccard says are very similar but that need
#    different answers. What does each teach about similarity caching?
# 8. When would you *not* cache an LM call at all?
#
# ## Further research
#
# * DSPy's cache: `dspy/clients/cache.py` and `dspy.configure_cache` — how the key is built from
#   the request, and what `restrict_pickle` protects against.
# * `diskcache` (the library behind DSPy's disk tier): eviction policies and `expire=`.
# * "Cache stampede" and *probabilistic early expiration* (Vattani, Chierichetti and Lowenstein,
#   "Optimal Probabilistic Cache Stampede Prevention", VLDB 2015).
# * Semantic caching of LLM answers (e.g. GPTCache) and its failure modes; why embeddings match
#   "France" with "Spain".
# * `rename(2)` and `fsync(2)`: what POSIX promises about atomic replacement, and what it does not
#   promise after a power cut.
#
# ## Check everything
#
# `ex1.check_all()` runs every self-check again on what your notebook defines now, and shows the
# points at stake; the optional task is listed apart and carries no points.

# %%
ex1.check_all()

# %% [markdown]
# ## How to submit
#
# 1. Save the notebook (**File → Save**, or Ctrl-S).
# 2. **Kernel → Restart Kernel and Run All Cells…**: the grader runs your notebook top to bottom in a
#    fresh kernel, so this shows what it will see. It must reach `check_all()` without stopping; if
#    it stops at a graded cell, that task is unfinished.
# 3. Press **Validate** in the notebook's toolbar: it runs the notebook the way the grader does and
#    reports any test cell that fails.
# 4. Hand it in: on the course JupyterHub, **Nbgrader → Assignment List**, then **Submit** next to
#    `ch07`; working on your own machine (`make lab`), upload the saved `01_caching.ipynb` where your
#    instructor asked.
