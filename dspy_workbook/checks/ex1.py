"""Self-checks and hints for Exercise 1 (caching): `ex1.check_…(…)` after each task's solution cell.

Each check exercises exactly the behaviours its task's text lists as graded, so ✅ here means the
hidden tests pass. Checks of later tasks use their own small cache and key (never the student's
earlier answers), as the graded cells do.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import math
import os
import re
import tempfile
import time
import warnings
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import dspy

from ..lm import sim_lm
from ._core import NotAttempted, expect
from ._exercise import Exercise

__all__ = [
    "check_all",
    "check_atomic_io",
    "check_cache_key",
    "check_cached_module",
    "check_disk_cache",
    "check_expiry",
    "check_similar_cache",
    "ex",
    "hint",
]

ex = Exercise("Exercise 1 · caching")
MISS_HINT = "a missing or damaged cache file is a miss: catch the error and return None"
HEX_KEY = re.compile(r"[0-9a-f]{64}")


def _call(what: str, fn: Callable[..., Any], *args: Any, hint: str = "", **kwargs: Any) -> Any:
    """Call the student's `fn`; an unexpected exception becomes a specific 'incorrect' message."""
    try:
        return fn(*args, **kwargs)
    except (NotImplementedError, AssertionError):
        raise
    except Exception as exc:
        suffix = f" — {hint}" if hint else ""
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}{suffix}") from exc


def _expect_callable(obj: Any, name: str) -> None:
    expect(
        callable(obj),
        f"`{name}` should be a function or class, got {type(obj).__name__} — pass the object "
        "itself",
    )


# -- Task 1 -------------------------------------------------------------------------------------
@ex.task(
    "key",
    "Task 1 · cache key",
    points=2,
    needs=("make_cache_key",),
    hints=(
        "Collect the four parts in one dict, serialise it with `json.dumps(..., sort_keys=True)` "
        "and hash "
        "the text with `hashlib.sha256(...).hexdigest()`. `lm_settings or {}` makes None and {} "
        "equal.",
        "JSON writes a tuple as a list and cannot write a `Decimal` at all (`default=str` makes it "
        "a "
        "plain string). Before `json.dumps`, walk the value recursively and wrap each list, tuple, "
        "set "
        'and unknown object in a one-key dict naming its type, e.g. `{"tuple": [...]}`, '
        '`{"Decimal": "1.10"}`.',
        "In `tag_types`: return None/bool/int/float/str unchanged; a dict becomes "
        '`{"dict": sorted([[tag_types(k), tag_types(v)], ...], key=json.dumps)}` (so `1` and `"1"` '
        "differ as keys); a list or tuple `{type(value).__name__: [tag_types(x) for x in value]}`; "
        "anything else `{type(value).__qualname__: str(value)}`. Apply it to `inputs` and "
        "`lm_settings`.",
    ),
)
def check_cache_key(make_cache_key: Callable[..., str]) -> str:
    """Format, determinism, and every part (and every type JSON would merge) changes the key."""
    _expect_callable(make_cache_key, "make_cache_key")
    base = {
        "signature": "question -> answer",
        "model": "sim/small",
        "lm_settings": {"temperature": 0.0},
    }
    question = {"question": "What is DSPy?"}

    def key(inputs: dict = question, **changes: Any) -> Any:
        return _call("`make_cache_key`", make_cache_key, inputs, **{**base, **changes})

    k = key()
    expect(k is not None, "`make_cache_key` returned None — did you forget `return`?")
    expect(
        isinstance(k, str) and HEX_KEY.fullmatch(k),
        "`make_cache_key` should return 64 lowercase hex characters (a SHA-256 hex digest), got "
        f"{k!r}",
    )
    expect(
        k == key(),
        f"the same call gave two different keys ({k[:12]}… and {key()[:12]}…): the key "
        "must not depend on the time, randomness or object ids",
    )
    expect(
        key({"question": "q", "context": "c"}) == key({"context": "c", "question": "q"}),
        "the same inputs in a different order gave different keys — serialise with "
        "`sort_keys=True`",
    )
    expect(
        k != key({"question": "What is a signature?"}), "two different questions gave the same key"
    )
    expect(
        k != key(model="sim/large"),
        "changing `model` kept the same key — a different model gives "
        "different answers, so put it in the key",
    )
    expect(
        k != key(signature="question -> answer\nAnswer in one word."),
        "changing the signature's instructions kept the same key — put `signature` in the key",
    )
    expect(
        k != key(lm_settings={"temperature": 0.9}),
        "changing the temperature kept the same key — put `lm_settings` in the key",
    )
    expect(
        k != key(lm_settings={"temperature": 0.0, "max_tokens": 20}),
        "adding `max_tokens` to the settings kept the same key — hash all of `lm_settings`",
    )
    expect(
        key(lm_settings=None) == key(lm_settings={}),
        "`lm_settings=None` and `lm_settings={}` gave different keys — both mean no settings",
    )
    merged = [
        ("a list and a tuple with the same items", ["a", "b"], ("a", "b")),
        ('`Decimal("1.10")` and the string `"1.10"`', Decimal("1.10"), "1.10"),
        ('the dict keys `1` and `"1"`', {1: "x"}, {"1": "x"}),
    ]
    for label, left, right in merged:
        expect(
            key({"q": left}) != key({"q": right}),
            f"{label} gave the same key — JSON merges them, so record the type before hashing",
        )
    expect(
        key(lm_settings={"stop": ["x"]}) != key(lm_settings={"stop": ("x",)}),
        "a list and a tuple in `lm_settings` gave the same key — tag types there too",
    )
    return "same call, same key; inputs, model, signature, settings and value types all change it."


# -- Task 2 -------------------------------------------------------------------------------------
def _expect_misses(read_json_entry: Callable[[Path], dict | None], folder: Path) -> None:
    """Missing, folder, truncated, non-UTF-8, deeply nested and non-dict files all read as None."""
    probes = [
        ("a missing file", None),
        ("a truncated file", b'{"value": {"ans'),
        ("a file of invalid UTF-8", b"\xff\xfe\x00"),
        ("a JSON list", b"[1, 2]"),
        ("JSON nested 50,000 levels deep", b"[" * 50_000),
    ]
    for label, content in probes:
        path = folder / "probe.json"
        path.unlink(missing_ok=True)
        if content is not None:
            path.write_bytes(content)
        got = _call(f"`read_json_entry` on {label}", read_json_entry, path, hint=MISS_HINT)
        expect(
            got is None,
            f"`read_json_entry` returned {got!r} for {label} — it should return None (a miss)",
        )
    got = _call("`read_json_entry` on a folder", read_json_entry, folder, hint=MISS_HINT)
    expect(got is None, f"`read_json_entry` returned {got!r} for a folder — it should return None")


def _expect_replace_in_same_folder(
    write_json_atomic: Callable[[Path, dict], None], target: Path
) -> None:
    """The write ends with `os.replace(tmp, target)`, tmp a `.tmp` file in target's folder."""
    with mock.patch("os.replace", wraps=os.replace) as spy:
        _call("`write_json_atomic`", write_json_atomic, target, {"value": "new"})
    expect(
        spy.called,
        "`write_json_atomic` never called `os.replace` — write a temporary file, then swap "
        "it in with `os.replace(tmp, path)` so no reader ever sees half a file",
    )
    src, dst = spy.call_args.args[:2]
    expect(
        Path(dst) == target,
        f"`os.replace` moved the temp file to {dst}, not to the target {target}",
    )
    expect(
        Path(src).parent == target.parent,
        f"the temporary file was in {Path(src).parent}, not in the same folder as the target "
        f"({target.parent}) — a rename across file systems fails (`EXDEV`); use "
        '`tempfile.mkstemp(dir=path.parent, suffix=".tmp")`',
    )
    expect(
        str(src).endswith(".tmp"),
        f"the temporary file {Path(src).name!r} does not end in `.tmp` — "
        "the cache finds a killed writer's leftovers by that suffix",
    )


@ex.task(
    "atomic_io",
    "Task 2 · atomic write, safe read",
    points=2,
    needs=("write_json_atomic", "read_json_entry"),
    hints=(
        'Reading: wrap `json.loads(Path(path).read_text(encoding="utf-8"))` in `try`/`except` and '
        "return None on failure; then return the data only if it is a dict.",
        "The three exceptions to catch are `OSError`, `ValueError` and `RecursionError`. Writing: "
        '`fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")` gives an open file '
        "descriptor "
        'in the target\'s folder; `os.fdopen(fd, "w", encoding="utf-8")` turns it into a file.',
        "Write: `json.dump` into the fdopen'ed file inside `with`, then `os.replace(tmp, path)`; "
        "put both "
        "in `try:` and in `except BaseException:` call `Path(tmp).unlink(missing_ok=True)` and "
        "`raise`.",
    ),
)
def check_atomic_io(
    write_json_atomic: Callable[[Path, dict], None], read_json_entry: Callable[[Path], dict | None]
) -> str:
    """Round trip, damaged or missing = None, replace from a same-folder .tmp, no leftovers."""
    _expect_callable(write_json_atomic, "write_json_atomic")
    _expect_callable(read_json_entry, "read_json_entry")
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "nested" / "entry.json"
        _call(
            "`write_json_atomic` into a folder that does not exist yet",
            write_json_atomic,
            target,
            {"value": {"answer": "42"}},
            hint="create parent folders with `mkdir(parents=True, exist_ok=True)`",
        )
        got = _call("`read_json_entry`", read_json_entry, target)
        expect(
            got == {"value": {"answer": "42"}},
            f"`read_json_entry` returned {got!r} for a file that "
            "`write_json_atomic` wrote with {'value': {'answer': '42'}}",
        )
        _expect_misses(read_json_entry, Path(tmp))
        _expect_replace_in_same_folder(write_json_atomic, target)
        try:
            write_json_atomic(target, {"value": object()})  # JSON cannot encode this
        except (NotImplementedError, AssertionError):
            raise
        except Exception:
            pass
        else:
            raise AssertionError(
                "`write_json_atomic` did not raise for a value JSON cannot encode — "
                "let that error propagate"
            )
        got = read_json_entry(target)
        expect(
            got == {"value": "new"},
            f"after a failed write the file holds {got!r} — a failed write must "
            "leave the previous file intact",
        )
        leftovers = sorted(p.name for p in target.parent.iterdir() if p != target)
        expect(
            not leftovers,
            f"files left behind next to the entry: {leftovers} — delete the temp file "
            "when the write fails",
        )
    return "round trip works, damaged or missing files read as None, and writes are atomic."


# -- Task 3 -------------------------------------------------------------------------------------
def _with_reference_io(cls: type, method: str) -> Any:
    """Check that Task 2's file functions, which `cls.method` calls, work first.

    The hidden tests grade Task 3 and 4 with a reference Task 2 of their own; a self-check ships
    with the workbook, so it cannot carry that reference (it would be Task 2's answer). It says
    plainly that it depends on Task 2 instead of failing Task 3 for Task 2's bug.
    """
    namespace = getattr(getattr(cls, method, None), "__globals__", None)
    if not isinstance(namespace, dict):
        return contextlib.nullcontext()
    write, read = namespace.get("write_json_atomic"), namespace.get("read_json_entry")
    if write is None or read is None:
        return contextlib.nullcontext()
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "nested" / "probe.json"
        try:
            write(probe, {"value": 1})
            works = read(probe) == {"value": 1}
        except Exception:
            works = False
    if not works:
        raise NotAttempted(
            "this check uses your Task 2 functions (`write_json_atomic`, `read_json_entry`), "
            "which do not work yet: make `ex1.check_atomic_io(...)` pass first. (Grading tests "
            "this task with a reference Task 2, so Task 2's bugs never cost points here.)"
        )
    return contextlib.nullcontext()


@ex.task(
    "disk_cache",
    "Task 3 · disk cache get/put",
    points=2,
    needs=("DiskCache",),
    hints=(
        "`put` is one call of `write_json_atomic` on `self.path_for(key)`; `get` starts with "
        "`read_json_entry(self.path_for(key))`.",
        'A miss has three causes: the entry is None, it has no "value", or `self.is_stale(entry)`. '
        "Count the miss (`self.misses += 1`) and return None in all three.",
        '`if entry is None or "value" not in entry or self.is_stale(entry):` → count a miss, '
        "return "
        'None; else `self.hits += 1` and return `entry["value"]`. `put` writes '
        '`{"key": key, "created": self.clock(), "value": value}`.',
    ),
)
def check_disk_cache(DiskCache: type) -> str:
    """Miss then hit with counters, the file format, persistence, damaged file = miss, is_stale."""
    _expect_callable(DiskCache, "DiskCache")
    with tempfile.TemporaryDirectory() as tmp, _with_reference_io(DiskCache, "get"):
        root = Path(tmp) / "deep" / "cache"
        cache = _call("`DiskCache(...)` on a nested folder", DiskCache, root, clock=lambda: 1234.5)
        got = _call("`get` of a key that was never stored", cache.get, "never-stored")
        expect(
            got is None,
            f"`get` of a key that was never stored returned {got!r} — it should return None",
        )
        expect(
            (cache.hits, cache.misses) == (0, 1),
            f"after one miss the counters are hits={cache.hits}, misses={cache.misses}, not 0 and "
            "1",
        )
        _call("`put`", cache.put, "k", {"answer": "42"})
        path = cache.path_for("k")
        expect(
            path.exists(),
            f"`put` did not write {path.name} in {cache.directory} — use `self.path_for(key)`",
        )
        stored = json.loads(path.read_text(encoding="utf-8"))
        expect(
            stored == {"key": "k", "created": 1234.5, "value": {"answer": "42"}},
            f"`put` wrote {stored!r} — the file holds exactly `key`, `created` (from "
            "`self.clock()`) "
            "and `value`",
        )
        got = _call("`get` after `put`", cache.get, "k")
        expect(
            got == {"answer": "42"}, f"`get` after `put(key, {{'answer': '42'}})` returned {got!r}"
        )
        expect(
            (cache.hits, cache.misses) == (1, 1),
            f"after a miss and a hit the counters are hits={cache.hits}, misses={cache.misses}",
        )
        again = _call("`get` from a new DiskCache on the same folder", DiskCache(root).get, "k")
        expect(
            again == {"answer": "42"},
            f"a new `DiskCache` on the same folder returned {again!r} — entries must be on disk",
        )
        for label, content in [
            ("a truncated file", path.read_bytes()[:7]),
            ("JSON nested 50,000 deep", b"[" * 50_000),
            ("an entry without a value", b'{"key": "k", "created": 0}'),
        ]:
            misses = cache.misses
            path.write_bytes(content)
            got = _call(
                f"`get` on {label}", cache.get, "k", hint="a damaged file is a miss, never a crash"
            )
            expect(got is None, f"`get` on {label} returned {got!r} — it should be a miss (None)")
            expect(cache.misses == misses + 1, f"{label} should count as one miss")

        class Stale(DiskCache):
            def is_stale(self, entry: dict) -> bool:
                return entry.get("value") == "old"

        stale = Stale(Path(tmp) / "stale")
        _call("`put`", stale.put, "a", "old")
        got = _call("`get`", stale.get, "a")
        expect(
            got is None,
            "`get` served an entry that `self.is_stale(entry)` calls stale — ask it before "
            "serving (Task 4's expiry depends on it)",
        )
    return "misses, hits, the file format, persistence, damaged files and `is_stale` all behave."


# -- Task 4 -------------------------------------------------------------------------------------
def _write_entry(cache: Any, key: str, created: Any, value: Any = "v") -> None:
    cache.path_for(key).write_text(json.dumps({"key": key, "created": created, "value": value}))


@ex.task(
    "expiry",
    "Task 4 · expiry and invalidation",
    points=2,
    needs=("ExpiringCache", "entry_age"),
    hints=(
        '`entry_age`: get `entry.get("created")`, return None unless it is a usable number, else '
        "`now - created`. `is_stale` compares that age with `self.ttl`.",
        "Usable means: `isinstance(created, int | float)` and not a `bool` (True is an int!), "
        "`math.isfinite(created)` (rules out NaN and ±infinity) and `created <= now` (the future "
        "is a "
        'damaged clock). For the clean-ups, loop over `self.directory.glob("*.json")`.',
        "`invalidate`: `path.unlink()` in `try`, `except FileNotFoundError: return False`. "
        "`invalidate_older_than`: for each file, `age = entry_age(read_json_entry(path) or {}, "
        "now)`; "
        "delete it when `age is None or age > seconds`. End both clean-ups with "
        "`self.remove_orphans()`.",
    ),
)
def check_expiry(ExpiringCache: type, entry_age: Callable[[dict, float], float | None]) -> str:
    """TTL, damaged timestamps, invalidate by key/age/all, namespaces, orphans; no get/put."""
    _expect_callable(ExpiringCache, "ExpiringCache")
    _expect_callable(entry_age, "entry_age")
    now = 1_000_000.0
    for created in (float("nan"), float("inf"), 1e30, now + 5, "yesterday", None, True):
        age = _call(f"`entry_age` with created={created!r}", entry_age, {"created": created}, now)
        expect(
            age is None,
            f"`entry_age({{'created': {created!r}}}, now)` returned {age!r} — a missing, "
            "non-numeric, non-finite or future timestamp has no age (None)",
        )
    age = _call("`entry_age`", entry_age, {"created": now - 3}, now)
    expect(age == 3, f"`entry_age` of an entry created 3 s ago returned {age!r}")
    with (
        tempfile.TemporaryDirectory() as tmp,
        _with_reference_io(ExpiringCache, "invalidate_older_than"),
    ):
        cache = ExpiringCache(tmp, ttl=60, clock=lambda: now)
        for age, stale in ((59, False), (60, False), (61, True)):
            got = _call("`is_stale`", cache.is_stale, {"created": now - age, "value": 1})
            expect(
                got is stale,
                f"with ttl=60 an entry {age} s old gave is_stale={got!r} — older than "
                "the TTL is stale, exactly the TTL is still fresh",
            )
        got = _call("`is_stale`", cache.is_stale, {"created": float("nan"), "value": 1})
        expect(
            got is True,
            "an entry with `created: NaN` is not stale — a damaged timestamp must be a miss",
        )
        never = ExpiringCache(tmp, clock=lambda: now)
        expect(
            _call("`is_stale` with ttl=None", never.is_stale, {"created": 0.0}) is False,
            "with `ttl=None` an entry must never be stale",
        )
        _write_entry(cache, "k", now)
        expect(
            _call("`invalidate`", cache.invalidate, "k") is True,
            "`invalidate` of a stored key should return True",
        )
        expect(
            not cache.path_for("k").exists(), "after `invalidate(key)` the key's file still exists"
        )
        expect(
            _call("`invalidate`", cache.invalidate, "k") is False,
            "`invalidate` of a key that is not stored should return False (and not raise)",
        )
        for name, created in (
            ("old1", now - 100),
            ("old2", now - 100),
            ("nan", float("nan")),
            ("future", 1e30),
        ):
            _write_entry(cache, name, created)
        _write_entry(cache, "new", now)
        cache.path_for("broken").write_text("{")
        removed = _call("`invalidate_older_than`", cache.invalidate_older_than, 50)
        expect(
            removed == 5,
            f"`invalidate_older_than(50)` with two entries 100 s old, one with a NaN time, one "
            f"from the future, one unreadable and one new returned {removed!r}, not 5",
        )
        left = sorted(p.stem for p in cache.directory.glob("*.json"))
        expect(
            left == ["new"],
            f"after `invalidate_older_than(50)` the entries left are {left}, not ['new']",
        )
        other = ExpiringCache(tmp, namespace="v2", clock=lambda: now)
        _write_entry(other, "x", now)
        orphan = cache.directory / ".new.json.abc.tmp"
        orphan.write_text('{"half')
        long_ago = time.time() - 3600
        os.utime(orphan, (long_ago, long_ago))
        removed = _call("`clear`", cache.clear)
        expect(removed == 1, f"`clear()` on a namespace holding one entry returned {removed!r}")
        expect(other.path_for("x").exists(), "`clear()` on 'v1' removed an entry of namespace 'v2'")
        expect(
            not orphan.exists(),
            "`clear()` left an hour-old `.tmp` file — call `self.remove_orphans()`",
        )
        orphan.write_text("x")
        os.utime(orphan, (long_ago, long_ago))
        _call("`invalidate_older_than`", cache.invalidate_older_than, 0)
        expect(
            not orphan.exists(),
            "`invalidate_older_than` left an hour-old `.tmp` file — call `self.remove_orphans()`",
        )
        try:
            ExpiringCache(tmp, ttl=float("nan"))
        except ValueError:
            pass
        else:
            raise AssertionError(
                "`ExpiringCache(ttl=float('nan'))` was accepted — keep the given "
                "`seconds_setting` check in `__init__`"
            )
    return "damaged timestamps are stale, the TTL holds, and every way to invalidate works."


# -- Task 5 -------------------------------------------------------------------------------------
class _DictCache:
    """The check's own cache: Task 5 is checked without the student's Tasks 1–4."""

    def __init__(self, error: Exception | None = None) -> None:
        self.data: dict[str, Any] = {}
        self.error = error

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def put(self, key: str, value: Any) -> None:
        if self.error is not None:
            raise self.error
        self.data[key] = value


def _graded(CachedPredict: type) -> type:
    """The student's module with the check's own key (inputs, program, model, settings)."""

    class Graded(CachedPredict):
        def cache_key(self, inputs: dict) -> str:
            lm = self.predict.lm or dspy.settings.lm
            text = repr(
                (
                    sorted(inputs.items()),
                    repr(self.predict.signature),
                    self.predict.signature.instructions,
                    lm.model,
                    sorted(lm.kwargs.items()),
                )
            )
            return hashlib.sha256(text.encode()).hexdigest()

    return Graded


class _When(dspy.Signature):
    """Answer with a date."""

    question: str = dspy.InputField()
    answer: datetime.date = dspy.OutputField()


@ex.task(
    "cached_module",
    "Task 5 · cached module",
    points=3,
    needs=("CachedPredict",),
    hints=(
        "`hit_rate`: count the calls first and only divide when there were some. `forward` starts "
        "with "
        "`key = self.cache_key(inputs)` and `stored = self.cache.get(key)`.",
        "A hit needs a stored value *and* `self.decode(stored)` that is not None. On a miss: "
        "`prediction = self.predict(**inputs)`, then store `self.encode(prediction)` with "
        "`self.cache.put`.",
        "Wrap encode + put in `try:` … `except (OSError, TypeError, ValueError) as exc: "
        'warnings.warn(f"the answer was not cached: {exc}")`, and `return prediction` after the '
        "`try`.",
    ),
)
def check_cached_module(CachedPredict: type) -> str:
    """Counters, no LM call on a hit, typed hits via decode, a failing cache loses no answer."""
    _expect_callable(CachedPredict, "CachedPredict")
    Graded = _graded(CachedPredict)
    sim = sim_lm(latency=0.0)
    with dspy.context(lm=sim):
        program = Graded(cache=_DictCache())
        rate = _call(
            "`hit_rate` before the first call",
            lambda: program.hit_rate,
            hint="with no calls yet, return 0.0 instead of dividing by zero",
        )
        expect(rate == 0.0, f"`hit_rate` before any call is {rate!r} — it should be 0.0")
        answers = [
            _call("calling your module", program, question=q).answer
            for q in ("What is DSPy?", "How do I optimize?", "What is DSPy?")
        ]
        expect(
            (program.hits, program.misses) == (1, 2),
            f"three questions with one repeat gave hits={program.hits}, misses={program.misses}",
        )
        expect(
            len(sim.history) == 2,
            f"the LM was called {len(sim.history)} times for 2 distinct questions — "
            "a hit must not call it",
        )
        expect(
            answers[2] == answers[0],
            f"the repeat was answered {answers[2]!r}, the first call {answers[0]!r}",
        )
        expect(
            math.isclose(program.hit_rate, 1 / 3),
            f"`hit_rate` after 1 hit and 2 misses is {program.hit_rate!r}",
        )
    dated = sim_lm(latency=0.0, answers={"moon": "1969-07-20"})
    with dspy.context(lm=dated):
        when = Graded(_When, cache=_DictCache())
        question = "When did people land on the moon?"
        _call("calling your module", when, question=question)
        hit = _call("calling your module", when, question=question)
        expect(
            isinstance(hit.answer, datetime.date),
            f"a hit for an `answer: datetime.date` field returned {hit.answer!r} — return "
            "`self.decode(stored)`, which restores the field's type",
        )
        when.cache.data[when.cache_key({"question": question})] = {"answer": "not a date"}
        _call("calling your module", when, question=question)
        expect(
            len(dated.history) == 2,
            "an entry `self.decode` rejects (it returned None) was served — "
            "treat it as a miss and call the LM",
        )
    for error in (OSError(28, "No space left on device"), TypeError("not JSON")):
        with dspy.context(lm=sim), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            broken = Graded(cache=_DictCache(error))
            answer = _call(
                f"your module when `cache.put` raises {type(error).__name__}",
                broken,
                question="What is a full disk?",
                hint="catch it around `put`, warn, and return the prediction",
            )
        expect(
            getattr(answer, "answer", None),
            f"with a cache whose `put` raises {type(error).__name__}, your "
            f"module returned {answer!r} instead of the answer",
        )
        expect(
            caught,
            f"`put` raised {type(error).__name__} and your module said nothing — "
            "`warnings.warn(...)` that the answer was not cached",
        )
    return "hits skip the LM and keep the fields' types; a failing cache still returns the answer."


# -- Going further ------------------------------------------------------------------------------
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
    points=2,
    core=False,
    needs=("SimilarQuestionCache", "normalize_question", "question_similarity"),
    hints=(
        'Tokens: `re.findall(r"[^\\W_]+|[-+*/^=<>%]", text)` after `casefold()` and replacing '
        '`"n\'t"` with `" not"`. `[^\\W_]` is a letter or digit in any script.',
        "In `question_similarity`, return 0.0 first when either token list is empty, then when the "
        "numbers (tokens with a digit), the signs or the negation words of the two differ.",
        'For order: compare `set(tokens) | {f"{x} {y}" for x, y in zip(tokens, tokens[1:])}` of '
        "both "
        "with Jaccard (|A & B| / |A | B|). `get` keeps the best score and answers only if it is "
        ">= `self.threshold`.",
    ),
)
def check_similar_cache(
    SimilarQuestionCache: type,
    normalize_question: Callable[[str], str],
    question_similarity: Callable[[str, str], float],
) -> str:
    """Unicode-aware normalisation, rephrasings hit, every kind of different question misses."""
    _expect_callable(SimilarQuestionCache, "SimilarQuestionCache")
    for text, want in [
        ("  What is   DSPy?! ", "what is dspy"),
        ("Isn't 2+2 = 4?", "is not 2 + 2 = 4"),
        ("Какая СТОЛИЦА?", "какая столица"),
    ]:
        got = _call("`normalize_question`", normalize_question, text)
        expect(got == want, f"`normalize_question({text!r})` returned {got!r}")
    cache = SimilarQuestionCache()
    expect(
        _call("`get` on an empty cache", cache.get, "anything") is None,
        "`get` on an empty cache should return None",
    )
    cache.put("What is the capital of France?", "Paris")
    for asked in ("what is the capital of france", "  WHAT is the capital of France?!"):
        got = _call("`get`", cache.get, asked)
        expect(
            got == "Paris",
            f"`get({asked!r})` returned {got!r} — case, punctuation and spaces should not matter",
        )
    got = _call("`get`", cache.get, "What is the capital of Spain?")
    expect(
        got is None,
        f"`get('What is the capital of Spain?')` returned {got!r} — a different question "
        "was answered from the cache",
    )
    for a, b, what in DIFFERENT:
        one = SimilarQuestionCache()
        one.put(a, "the answer to a")
        score = _call("`question_similarity`", question_similarity, a, b)
        got = _call("`get`", one.get, b)
        expect(
            got is None and score < 0.9,
            f"{what}: {b!r} scored {score!r} against {a!r} and got {got!r} — it needs its own "
            "answer",
        )
    for a, b, what in [DIFFERENT[2], DIFFERENT[3], DIFFERENT[4]]:
        score = _call("`question_similarity`", question_similarity, a, b)
        expect(
            score == 0.0,
            f"{what}: {a!r} and {b!r} scored {score!r} — when numbers, signs or negation "
            "words differ, the similarity must be 0.0, whatever the threshold",
        )
    expect(
        _call("`question_similarity`", question_similarity, "", "") == 0.0,
        "two empty questions scored above 0.0 — an empty question must never match",
    )
    loose = SimilarQuestionCache(threshold=0.3)
    loose.put("red green blue", "colours")
    loose.put("red green blue yellow", "four colours")
    got = _call("`get`", loose.get, "red green blue yellow!")
    expect(
        got == "four colours",
        f"`get` returned {got!r} — the *most* similar stored question must win",
    )
    return "rephrasings hit; swapped words, operators, numbers, negations and empty questions miss."


hint, check_all = ex.hint, ex.check_all
