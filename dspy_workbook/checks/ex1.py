"""Self-checks for Exercise 1 (caching): `ex1.check_…(…)` right after each task's solution cell."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import dspy

from ..caching._timing import ManualClock
from ..lm._sim import sim_lm
from ._core import check, expect

__all__ = [
    "check_atomic_io", "check_cache_key", "check_cached_module", "check_disk_cache",
    "check_invalidation", "check_similar_cache",
]

MISS_HINT = "a missing or corrupt cache file is a miss: catch `OSError` and `ValueError`, return None"


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
    expect(callable(obj),
           f"`{name}` should be a function or class, got {type(obj).__name__} — pass the object itself")


# -- Task 1 -------------------------------------------------------------------------------------
@check("Task 1 · cache key")
def check_cache_key(make_cache_key: Callable[..., str]) -> str:
    """Same call → same key; each of inputs, order, signature, model and settings matters."""
    _expect_callable(make_cache_key, "make_cache_key")
    base = {"signature": "question -> answer", "model": "sim/small", "lm_settings": {"temperature": 0.0}}
    question = {"question": "What is DSPy?"}

    def key(inputs: dict = question, **changes: Any) -> Any:
        return _call("`make_cache_key`", make_cache_key, inputs, **{**base, **changes})

    k = key()
    expect(k is not None, "`make_cache_key` returned None — did you forget `return`?")
    expect(isinstance(k, str) and k, f"`make_cache_key` should return a non-empty str, got {k!r}")
    expect(k == key(), f"the same call gave two different keys ({k[:12]}… and {key()[:12]}…): the key "
                       "must not depend on the time, randomness or object ids")
    expect(key({"question": "q", "context": "c"}) == key({"context": "c", "question": "q"}),
           "the same inputs in a different order gave different keys — serialise with `sort_keys=True`")
    expect(k != key({"question": "What is a signature?"}), "two different questions gave the same key")
    expect(k != key(model="sim/large"), "changing `model` kept the same key — a different model gives "
                                        "different answers, so put it in the key")
    expect(k != key(signature="question -> answer\nAnswer in one word."),
           "changing the signature's instructions kept the same key — put `signature` in the key")
    expect(k != key(lm_settings={"temperature": 0.9}),
           "changing the temperature kept the same key — put `lm_settings` in the key")
    expect(k != key(lm_settings={"temperature": 0.0, "max_tokens": 20}),
           "adding `max_tokens` to the settings kept the same key — hash all of `lm_settings`")
    expect(all(c.isalnum() or c in "-_" for c in k),
           f"the key {k!r} has characters that are not safe in a file name — return a hex digest")
    return "same call, same key; inputs (in any order), model, signature and settings all change it."


# -- Task 2 -------------------------------------------------------------------------------------
def _expect_misses(read_json_entry: Callable[[Path], dict | None], folder: Path) -> None:
    """Missing, truncated, non-UTF-8 and non-dict files all read as None."""
    probes = [("a missing file", None), ("a truncated file", b'{"value": {"ans'),
              ("a file of invalid UTF-8", b"\xff\xfe\x00"), ("a JSON list", b"[1, 2]")]
    for label, content in probes:
        path = folder / "probe.json"
        path.unlink(missing_ok=True)
        if content is not None:
            path.write_bytes(content)
        got = _call(f"`read_json_entry` on {label}", read_json_entry, path, hint=MISS_HINT)
        expect(got is None, f"`read_json_entry` returned {got!r} for {label} — it should return None (a miss)")


def _expect_replace_in_same_folder(write_json_atomic: Callable[[Path, dict], None], target: Path) -> None:
    """The write ends with `os.replace(tmp, target)` where tmp sits in target's folder."""
    with mock.patch("os.replace", wraps=os.replace) as spy:
        _call("`write_json_atomic`", write_json_atomic, target, {"value": "new"})
    expect(spy.called, "`write_json_atomic` never called `os.replace` — write a temporary file, then swap "
                       "it in with `os.replace(tmp, path)` so no reader ever sees half a file")
    src, dst = spy.call_args.args[:2]
    expect(Path(dst) == target, f"`os.replace` moved the temp file to {dst}, not to the target {target}")
    expect(Path(src).parent == target.parent,
           f"the temporary file was in {Path(src).parent}, not in the same folder as the target "
           f"({target.parent}) — `os.replace` is only atomic within one file system "
           "(use `tempfile.mkstemp(dir=path.parent)`)")


@check("Task 2 · atomic write, safe read")
def check_atomic_io(write_json_atomic: Callable[[Path, dict], None],
                    read_json_entry: Callable[[Path], dict | None]) -> str:
    """Round trip, corrupt/missing/non-dict = None, os.replace from the same folder, no temp files."""
    _expect_callable(write_json_atomic, "write_json_atomic")
    _expect_callable(read_json_entry, "read_json_entry")
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "nested" / "entry.json"
        _call("`write_json_atomic` into a folder that does not exist yet", write_json_atomic, target,
              {"value": {"answer": "42"}}, hint="create parent folders with `mkdir(parents=True, exist_ok=True)`")
        got = _call("`read_json_entry`", read_json_entry, target)
        expect(got == {"value": {"answer": "42"}}, f"`read_json_entry` returned {got!r} for a file that "
                                                   "`write_json_atomic` wrote with {'value': {'answer': '42'}}")
        _expect_misses(read_json_entry, Path(tmp))
        _expect_replace_in_same_folder(write_json_atomic, target)
        try:
            write_json_atomic(target, {"value": object()})  # JSON cannot encode this
        except (NotImplementedError, AssertionError):
            raise
        except Exception:
            pass
        else:
            raise AssertionError("`write_json_atomic` did not raise for a value JSON cannot encode — "
                                 "let that error propagate")
        got = read_json_entry(target)
        expect(got == {"value": "new"}, f"after a failed write the file holds {got!r} — a failed write must "
                                        "leave the previous file intact")
        leftovers = sorted(p.name for p in target.parent.iterdir() if p != target)
        expect(not leftovers, f"files left behind next to the entry: {leftovers} — delete the temp file "
                              "when the write fails")
    return "round trip works, corrupt or missing files read as None, and writes are atomic."


# -- Task 3 -------------------------------------------------------------------------------------
@check("Task 3 · disk cache get/put")
def check_disk_cache(DiskCache: type) -> str:
    """Miss then hit with counters, persistence across instances, truncated file = miss."""
    _expect_callable(DiskCache, "DiskCache")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "deep" / "cache"
        cache = _call("`DiskCache(...)` on a nested folder", DiskCache, root)
        got = _call("`get` of a key that was never stored", cache.get, "never-stored")
        expect(got is None, f"`get` of a key that was never stored returned {got!r} — it should return None")
        expect((cache.hits, cache.misses) == (0, 1),
               f"after one miss the counters are hits={cache.hits}, misses={cache.misses}, not 0 and 1")
        _call("`put`", cache.put, "k", {"answer": "42"})
        got = _call("`get` after `put`", cache.get, "k")
        expect(got == {"answer": "42"}, f"`get` after `put(key, {{'answer': '42'}})` returned {got!r}")
        expect((cache.hits, cache.misses) == (1, 1),
               f"after a miss and a hit the counters are hits={cache.hits}, misses={cache.misses}")
        again = _call("`get` from a new DiskCache on the same folder", DiskCache(root).get, "k")
        expect(again == {"answer": "42"},
               f"a new `DiskCache` on the same folder returned {again!r} — entries must be on disk")
        path = cache.path_for("k")
        expect(path.exists(), f"`put` did not write {path.name} in {cache.directory} — use `self.path_for(key)`")
        path.write_bytes(path.read_bytes()[: max(1, len(path.read_bytes()) // 2)])
        got = _call("`get` on a truncated file", cache.get, "k", hint="a corrupt file is a miss, never a crash")
        expect(got is None, f"`get` on a truncated file returned {got!r} — it should be a miss (None)")
        expect(cache.misses == 2, f"a truncated file should count as a miss; misses is {cache.misses}, not 2")
    return "misses, hits, persistence and corrupt files all behave."


# -- Task 4 -------------------------------------------------------------------------------------
@check("Task 4 · TTL and invalidation")
def check_invalidation(DiskCache: type) -> str:
    """TTL expiry with a manual clock, invalidate one key, by age, all, and namespaces."""
    _expect_callable(DiskCache, "DiskCache")
    with tempfile.TemporaryDirectory() as tmp:
        clock = ManualClock()
        cache = DiskCache(tmp, ttl=60, clock=clock)
        cache.put("k", "v")
        clock.advance(59)
        got = _call("`get` within the TTL", cache.get, "k")
        expect(got == "v", f"an entry 59 s old with ttl=60 returned {got!r} — it is still fresh")
        clock.advance(2)
        got = _call("`get` after the TTL", cache.get, "k")
        expect(got is None, f"an entry 61 s old with ttl=60 returned {got!r} — it has expired: a miss")
        cache.put("k", "v")
        expect(_call("`invalidate`", cache.invalidate, "k") is True,
               "`invalidate` of a stored key should return True")
        expect(cache.get("k") is None, "after `invalidate(key)`, `get(key)` still returned a value")
        expect(_call("`invalidate`", cache.invalidate, "k") is False,
               "`invalidate` of a key that is not stored should return False (and not raise)")
        for name in ("old1", "old2"):
            cache.put(name, name)
        clock.advance(100)
        cache.put("new", "new")
        removed = _call("`invalidate_older_than`", cache.invalidate_older_than, 50)
        expect(removed == 2, f"`invalidate_older_than(50)` with two entries 100 s old and one new one "
                             f"returned {removed!r}")
        expect(DiskCache(tmp, clock=clock).get("new") == "new",
               "`invalidate_older_than` removed an entry younger than the limit")
        other = DiskCache(tmp, namespace="v2", clock=clock)
        expect(other.get("new") is None,
               "namespace 'v2' returned an entry stored in 'v1' — namespaces must not share entries")
        other.put("x", 1)
        removed = _call("`clear`", cache.clear)
        expect(removed == 1, f"`clear()` on a namespace holding one entry returned {removed!r}")
        expect(other.get("x") == 1, "`clear()` on 'v1' removed an entry of namespace 'v2'")
    return "entries expire after the TTL; invalidation by key, by age, by namespace and in full works."


# -- Task 5 -------------------------------------------------------------------------------------
@check("Task 5 · cached module")
def check_cached_module(CachedPredict: type, DiskCache: type) -> str:
    """Counters, no LM call on a hit, same answer, 0.0 hit rate at start, settings in the key."""
    _expect_callable(CachedPredict, "CachedPredict")
    sim = sim_lm(latency=0.0)
    with tempfile.TemporaryDirectory() as tmp, dspy.context(lm=sim):
        program = CachedPredict(cache=DiskCache(tmp))
        rate = _call("`hit_rate` before the first call", lambda: program.hit_rate,
                     hint="with no calls yet, return 0.0 instead of dividing by zero")
        expect(rate == 0.0, f"`hit_rate` before any call is {rate!r} — it should be 0.0")
        answers = [_call("calling your module", program, question=q).answer
                   for q in ("What is DSPy?", "How do I optimize?", "What is DSPy?")]
        expect((program.hits, program.misses) == (1, 2),
               f"three questions with one repeat gave hits={program.hits}, misses={program.misses}")
        expect(sim.engine.stats.calls == 2, f"the LM was called {sim.engine.stats.calls} times for 2 distinct "
                                            "questions — a hit must not call it")
        expect(answers[2] == answers[0], f"the repeat was answered {answers[2]!r}, the first call {answers[0]!r}")
        expect(abs(program.hit_rate - 1 / 3) < 1e-9,
               f"`hit_rate` after 1 hit and 2 misses is {program.hit_rate!r}")
        hot = sim_lm(latency=0.0, temperature=0.9)
        with dspy.context(lm=hot):
            _call("calling your module under another LM", program, question="What is DSPy?")
        expect(program.misses == 3 and hot.engine.stats.calls == 1,
               "the same question at temperature 0.9 was served from the cache — the LM's settings "
               "(`lm.kwargs`) must be in the key")
    return "one hit, two misses, no LM call on a hit, and a changed temperature misses."


# -- Task 6 -------------------------------------------------------------------------------------
@check("Task 6 · similar questions")
def check_similar_cache(SimilarQuestionCache: type, normalize_question: Callable[[str], str]) -> str:
    """Normalisation, rephrasings hit, a different question misses, empty cache misses."""
    _expect_callable(SimilarQuestionCache, "SimilarQuestionCache")
    normal = _call("`normalize_question`", normalize_question, "  What is   DSPy?! ")
    expect(normal == "what is dspy", f"`normalize_question('  What is   DSPy?! ')` returned {normal!r}")
    cache = SimilarQuestionCache()
    expect(_call("`get` on an empty cache", cache.get, "anything") is None,
           "`get` on an empty cache should return None")
    cache.put("What is the capital of France?", "Paris")
    for asked in ("what is the capital of france", "  WHAT is the capital of France?!"):
        got = _call("`get`", cache.get, asked)
        expect(got == "Paris",
               f"`get({asked!r})` returned {got!r} — case, punctuation and spaces should not matter")
    got = _call("`get`", cache.get, "What is the capital of Spain?")
    expect(got is None, f"`get('What is the capital of Spain?')` returned {got!r} — a different question "
                        "was answered from the cache; check the threshold comparison and the similarity")
    return "rephrasings hit, a different question misses."
