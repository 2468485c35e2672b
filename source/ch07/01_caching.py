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
# A language-model call is slow (hundreds of milliseconds to seconds) and, with a hosted
# provider, it costs money. Real traffic repeats itself: the same few questions arrive again and
# again. A cache answers a repeated call from a file in well under a millisecond.
#
# A cache is also easy to get subtly wrong. It can hand back an answer that belongs to a
# different model, or crash on a half-written file. It can grow forever, or go on serving
# yesterday's answer after you changed the prompt. In this notebook you build a disk cache step
# by step and wrap a DSPy module with it. Then you measure it, compare it with DSPy's built-in
# cache, and finish with a look at caching *similar* questions.
#
# | Task | You write | Points |
# |---|---|---|
# | 1 | `make_cache_key` — a key that changes whenever the answer could | 2 |
# | 2 | `write_json_atomic`, `read_json_entry` — files that are never half-written | 2 |
# | 3 | `DiskCache.get` / `put` — hits, misses, corrupt file = miss | 2 |
# | 4 | `DiskCache` TTL and invalidation | 2 |
# | 5 | `CachedPredict` — a DSPy module that checks the cache first | 3 |
# | 6 (advanced) | `SimilarQuestionCache` — partial matching, safely | 2 |
#
# After each task, run the **self-check** cell under it. It tells you at once whether your code
# behaves, and if not, what it did. The locked test cells after it are what grading runs (plus
# some hidden tests of the same behaviours).

# %%
import dspy_workbook as wb

lm = wb.setup()

# %%
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import dspy
import pandas as pd
from IPython.display import display

from dspy_workbook import caching as wbc
from dspy_workbook.checks import ex1

# %% [markdown]
# ## What a naive cache gets wrong
#
# A first attempt at a cached module usually looks like this: hash the inputs with md5, use the
# hash as a file name in `.cache/`, and count hits and misses. It has five problems, and each
# task below fixes one of them:
#
# | Problem | Why it hurts | Fixed in |
# |---|---|---|
# | The key is the md5 of the **inputs only** | Change the model, the temperature or the instructions and you still get the old answer | Task 1 |
# | `json.dump` straight into the final file | A crash or a parallel reader sees a half-written file; the next read crashes | Task 2 |
# | A corrupt file raises | One bad file takes the whole program down, when it should just cost one LM call | Tasks 2–3 |
# | `mkdir()` without `parents=True` | Fails as soon as the cache lives in a nested folder such as `.workbook_cache/ex1/...` | Task 3 |
# | Entries never expire, and nothing can be removed | Stale answers live forever, and the only fix is `rm -rf` | Task 4 |
# | `hits / (hits + misses)` | `ZeroDivisionError` before the first call | Task 5 |
#
# The cache files in this notebook live under `.workbook_cache/ex1/`. Git and nbgrader both
# ignore that folder, and each demo starts by emptying its own sub-folder
# (`wbc.fresh_cache_dir`), so every run of the notebook gives the same counts.

# %% [markdown]
# ## Task 1 — a key that changes whenever the answer could
#
# The cache key must be **deterministic**: the same call gives the same key in every process,
# on every run. Python's built-in `hash()` of a string is salted per process, so it fails that
# test. `json.dumps(..., sort_keys=True)` followed by a cryptographic hash passes it. Sorting the
# keys matters, because `{"a": 1, "b": 2}` and `{"b": 2, "a": 1}` are the same inputs.
#
# The key must also be **complete**. It has to include *everything that changes the answer*:
#
# * the **inputs** (`{"question": ...}`);
# * the **signature**: its fields and its instructions. Rewriting the instructions is the whole
#   point of prompt optimisation, so old answers must not survive it;
# * the **model** (`lm.model`). A small local model and GPT-4 give different answers;
# * the **LM settings** (`lm.kwargs`: `temperature`, `max_tokens`, ...). `max_tokens=20` truncates
#   answers, and a cached truncated answer should not be served when you ask for 500.
#
# Here is what goes wrong with a key built from the inputs only:

# %%
def inputs_only_key(inputs: dict) -> str:
    """The naive key: md5 of the inputs and nothing else (don't use this)."""
    return hashlib.md5(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


question = {"question": "What is DSPy?"}
print("small model, temperature 0  :", inputs_only_key(question)[:12])
print("large model, temperature 0.9:", inputs_only_key(question)[:12], "← same key, so the same stale answer")

# %% [markdown]
# Write `make_cache_key`. Put the four parts into one dict, serialise it with
# `json.dumps(..., sort_keys=True, default=str)`, and return the SHA-256 hex digest. The
# `default=str` argument turns anything JSON cannot encode into a string instead of raising. md5
# would work as well. We use SHA-256 because md5 collisions can be built on purpose, and a key
# someone could forge is a bad habit to get into. The result is 64 hex characters, which is also
# a safe file name.

# %% nbgrader={"solution": true, "grade_id": "cache_key"}
def make_cache_key(inputs: dict, *, signature: str, model: str, lm_settings: dict | None = None) -> str:
    """A deterministic hex key for one LM-backed call: inputs + signature + model + LM settings."""
    # Steps: 1) payload = {"inputs": ..., "signature": ..., "model": ..., "lm_settings": ...}
    #        2) text = json.dumps(payload, sort_keys=True, default=str)
    #        3) return the sha256 hexdigest of text.encode("utf-8")
    ### BEGIN SOLUTION
    payload = {"inputs": inputs, "signature": signature, "model": model, "lm_settings": lm_settings or {}}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
    ### END SOLUTION


# %%
ex1.check_cache_key(make_cache_key)

# %% nbgrader={"grade": true, "grade_id": "test_cache_key", "points": 2}
base = dict(signature="question -> answer", model="sim/a", lm_settings={"temperature": 0.0})
k = make_cache_key({"question": "What is DSPy?"}, **base)
assert isinstance(k, str) and k, "make_cache_key must return a non-empty string"
assert k == make_cache_key({"question": "What is DSPy?"}, **base), "same call, different key"
assert k != make_cache_key({"question": "What is DSPy?"}, **{**base, "model": "sim/b"}), "the model must be in the key"
### BEGIN HIDDEN TESTS
two = {"question": "q", "context": "c"}
assert make_cache_key(two, **base) == make_cache_key(dict(reversed(list(two.items()))), **base)
assert k != make_cache_key({"question": "What is dspy?"}, **base)
assert k != make_cache_key({"question": "What is DSPy?"}, **{**base, "signature": "question -> answer\nBe brief."})
assert k != make_cache_key({"question": "What is DSPy?"}, **{**base, "lm_settings": {"temperature": 0.9}})
assert k != make_cache_key({"question": "What is DSPy?"}, **{**base, "lm_settings": {"temperature": 0.0, "max_tokens": 20}})
assert re.fullmatch(r"[0-9A-Za-z_-]+", k), "the key is used as a file name"
### END HIDDEN TESTS

# %% [markdown]
# ## Task 2 — files that are never half-written
#
# Writing a file takes time. If the process dies halfway (Ctrl-C, an out-of-memory kill, a full
# disk), or another process reads at the wrong moment, the file holds *half* a JSON document. A
# cache that trusts its files then crashes on the next run.
#
# The cure is an **atomic write**:
#
# 1. write the whole document to a *temporary file in the same folder*
#    (`tempfile.mkstemp(dir=path.parent)`);
# 2. `os.replace(tmp, path)`, which swaps the new file in as a single step. Readers see either
#    the old file or the new one, never a mix.
#
# The temporary file has to be in the **same folder**, because `os.replace` is only atomic
# within one file system. A file in `/tmp` may sit on another disk, and then the "rename" turns
# into a copy, which is exactly the non-atomic write we wanted to avoid. If anything fails,
# delete the temporary file and re-raise.
#
# Reading is the other half: **a missing, truncated or corrupt file is a miss, never a crash.**
# Catch `OSError` (missing or unreadable) and `ValueError` (bad JSON, bad UTF-8; `JSONDecodeError`
# is a `ValueError`) and return `None`. Return `None` as well when the JSON is valid but is not a
# dict.

# %% nbgrader={"solution": true, "grade_id": "atomic_io"}
def write_json_atomic(path: Path | str, data: dict) -> None:
    """Write `data` as JSON to `path` atomically: temp file in the same folder, then `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # parents=True: nested cache folders work
    # Steps: fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    #        try: write json.dumps(data) through os.fdopen(fd, "w", encoding="utf-8"); os.replace(tmp, path)
    #        except BaseException: remove tmp (if it still exists) and re-raise
    ### BEGIN SOLUTION
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    ### END SOLUTION


def read_json_entry(path: Path | str) -> dict | None:
    """The dict stored at `path`, or None if the file is missing, unreadable, truncated or not a dict."""
    ### BEGIN SOLUTION
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
    ### END SOLUTION


# %%
ex1.check_atomic_io(write_json_atomic, read_json_entry)

# %% [markdown]
# See it for yourself: write an entry, cut the file in half (what a crash mid-write leaves
# behind), and read it again.

# %%
demo_dir = wbc.fresh_cache_dir("ex1/truncate_demo")
entry_path = demo_dir / "entry.json"
write_json_atomic(entry_path, {"value": {"answer": "DSPy is a framework for programming LMs."}})
print("intact   :", read_json_entry(entry_path))
raw = entry_path.read_bytes()
entry_path.write_bytes(raw[: len(raw) // 2])
print("truncated:", read_json_entry(entry_path))
print("files left in the folder:", sorted(p.name for p in demo_dir.iterdir()))

# %% nbgrader={"grade": true, "grade_id": "test_atomic_io", "points": 2}
with tempfile.TemporaryDirectory() as tmp_dir:
    target = Path(tmp_dir) / "nested" / "entry.json"
    write_json_atomic(target, {"value": {"answer": "42"}})
    assert read_json_entry(target) == {"value": {"answer": "42"}}, "round trip failed"
    target.write_text('{"value": {"answ')
    assert read_json_entry(target) is None, "a truncated file must read as None (a miss)"
    ### BEGIN HIDDEN TESTS
    from unittest import mock

    assert read_json_entry(Path(tmp_dir) / "missing.json") is None
    target.write_bytes(b"\xff\xfe\x00garbage")
    assert read_json_entry(target) is None
    target.write_text("[1, 2, 3]")
    assert read_json_entry(target) is None
    with mock.patch("os.replace", wraps=os.replace) as spy:
        write_json_atomic(target, {"value": 1})
    assert spy.called, "write with os.replace"
    src, dst = spy.call_args.args[:2]
    assert Path(src).parent == Path(dst).parent and Path(dst) == target
    write_json_atomic(target, {"value": "old"})
    try:
        write_json_atomic(target, {"value": object()})  # cannot be encoded: the write must fail
    except TypeError:
        pass
    else:
        raise AssertionError("an unencodable value must raise")
    assert read_json_entry(target) == {"value": "old"}, "a failed write must leave the old file intact"
    assert sorted(p.name for p in target.parent.iterdir()) == ["entry.json"], "temp files left behind"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Task 3 — the disk cache: get, put, hits and misses
#
# `DiskCache` keeps one JSON file per key. Each file holds `{"key", "created", "value"}`, where
# `created` is a timestamp from `self.clock()`. The time comes from `clock` rather than straight
# from `time.time` so that tests can move time by hand (`wbc.ManualClock`) instead of sleeping.
#
# The files go into `directory/namespace/`. The namespace is a **version**: when you change the
# program in a way the key cannot see (say, the post-processing of answers), start using
# `namespace="v2"`. Every old entry is then out of reach at once, and the old folder can be
# deleted at leisure.
#
# Write `get` and `put` (Task 4 fills in the rest of the class):
#
# * `put(key, value)` writes `{"key": key, "created": self.clock(), "value": value}` atomically.
# * `get(key)` returns the stored value and counts a **hit**. Or it counts a **miss** and returns
#   `None` when the file is missing or corrupt (`read_json_entry` gives `None`), when it has no
#   `"value"`, or when it has **expired**: `self.ttl is not None and self._expired(entry)`.
#   You write `_expired` in Task 4; checking `self.ttl` first means Task 3 works without it.
#   (Values are never `None` in this exercise, so `None` can stand for "miss".)

# %% nbgrader={"solution": true, "grade_id": "disk_cache"}
class DiskCache:
    """A folder of JSON files, one per key, with hit/miss counters, a TTL and invalidation."""

    def __init__(self, directory: Path | str, *, namespace: str = "v1", ttl: float | None = None,
                 clock=time.time) -> None:
        if ttl is not None and ttl < 0:
            raise ValueError(f"ttl is in seconds and must be >= 0 (or None for no expiry), got {ttl}")
        if not re.fullmatch(r"[\w.-]+", namespace) or namespace in {".", ".."}:
            raise ValueError(f"namespace must be a plain folder name such as 'v2', got {namespace!r}")
        self.directory = Path(directory) / namespace
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ttl, self.clock = ttl, clock
        self.hits = 0
        self.misses = 0

    def path_for(self, key: str) -> Path:
        """The file that holds `key`'s entry."""
        return self.directory / f"{key}.json"

    def get(self, key: str) -> Any | None:
        """The cached value for `key` (a hit), or None (a miss: absent, corrupt or expired)."""
        # Steps: entry = read_json_entry(self.path_for(key))
        #        a miss if entry is None, or "value" not in entry,
        #        or (self.ttl is not None and self._expired(entry)): count it, return None
        #        otherwise count a hit and return entry["value"]
        ### BEGIN SOLUTION
        entry = read_json_entry(self.path_for(key))
        if entry is None or "value" not in entry or (self.ttl is not None and self._expired(entry)):
            self.misses += 1
            return None
        self.hits += 1
        return entry["value"]
        ### END SOLUTION

    def put(self, key: str, value: Any) -> None:
        """Store `value` under `key` (atomically), stamped with the current time."""
        # One line: write_json_atomic(<the key's path>, {"key": ..., "created": self.clock(), "value": ...})
        ### BEGIN SOLUTION
        write_json_atomic(self.path_for(key), {"key": key, "created": self.clock(), "value": value})
        ### END SOLUTION

    # --- Task 4 -------------------------------------------------------------------------------
    def _expired(self, entry: dict) -> bool:
        """True when `entry` is older than `self.ttl` (or has no usable timestamp); called only if ttl is set."""
        # created = entry.get("created"); not an int or float -> True; else compare its age with self.ttl
        ### BEGIN SOLUTION
        created = entry.get("created")
        if not isinstance(created, (int, float)) or isinstance(created, bool):
            return True
        return self.clock() - created > self.ttl
        ### END SOLUTION

    def invalidate(self, key: str) -> bool:
        """Delete `key`'s entry; True if there was one."""
        # Path.exists() gives the answer to return; Path.unlink(missing_ok=True) deletes without raising
        ### BEGIN SOLUTION
        path = self.path_for(key)
        existed = path.exists()
        path.unlink(missing_ok=True)
        return existed
        ### END SOLUTION

    def invalidate_older_than(self, seconds: float) -> int:
        """Delete every entry created more than `seconds` ago (and any unreadable one); return how many."""
        # now = self.clock(); for each path in self.directory.glob("*.json"): read it, and delete it
        # if it is unreadable, if its "created" is not a number, or if now - created > seconds
        ### BEGIN SOLUTION
        removed = 0
        now = self.clock()
        for path in self.directory.glob("*.json"):
            entry = read_json_entry(path)
            created = entry.get("created") if entry else None
            if not isinstance(created, (int, float)) or now - created > seconds:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
        ### END SOLUTION

    def clear(self) -> int:
        """Delete every entry of this namespace; return how many."""
        # every self.directory.glob("*.json") goes; only this namespace's folder is touched
        ### BEGIN SOLUTION
        removed = 0
        for path in self.directory.glob("*.json"):
            path.unlink(missing_ok=True)
            removed += 1
        return removed
        ### END SOLUTION


# %%
ex1.check_disk_cache(DiskCache)

# %% nbgrader={"grade": true, "grade_id": "test_disk_cache", "points": 2}
with tempfile.TemporaryDirectory() as tmp_dir:
    cache = DiskCache(Path(tmp_dir) / "a" / "b")
    assert cache.get("k1") is None and (cache.hits, cache.misses) == (0, 1)
    cache.put("k1", {"answer": "42"})
    assert cache.get("k1") == {"answer": "42"} and (cache.hits, cache.misses) == (1, 1)
    ### BEGIN HIDDEN TESTS
    assert DiskCache(Path(tmp_dir) / "a" / "b").get("k1") == {"answer": "42"}, "entries persist on disk"
    cache.put("k1", {"answer": "43"})
    assert cache.get("k1") == {"answer": "43"}
    path = cache.path_for("k1")
    path.write_bytes(path.read_bytes()[:7])
    assert cache.get("k1") is None and cache.misses == 2, "a truncated file is a miss"
    path.write_text('{"key": "k1", "created": 0}')
    assert cache.get("k1") is None and cache.misses == 3, "an entry without a value is a miss"
    cache.put("k2", ["a", 1, None, {"x": 2.5}])
    assert cache.get("k2") == ["a", 1, None, {"x": 2.5}]
    assert sorted(p.name for p in cache.directory.iterdir()) == sorted([path.name, cache.path_for("k2").name])
    ### END HIDDEN TESTS

# %% [markdown]
# ## Task 4 — expiry and invalidation
#
# Answers go stale: the facts change, the documents behind them are updated, the model is
# upgraded. Four tools, from the finest to the coarsest:
#
# | Tool | Use it when |
# |---|---|
# | **TTL**: `_expired(entry)` is true when `self.clock() - entry["created"] > self.ttl`; a `created` that is not a number counts as expired | every answer is only good for so long, e.g. 1 day for news, 30 days for definitions |
# | `invalidate(key)` | you know one answer is wrong (a user reported it) |
# | `invalidate_older_than(seconds)` | a nightly clean-up: expired entries would never be served, so reclaim their disk space |
# | `clear()` / a new `namespace` | the program changed in a way the key can't see: bump `"v1"` → `"v2"` |
#
# Write `_expired`, `invalidate`, `invalidate_older_than` and `clear` in the class above, then
# run its cell again. `invalidate_older_than` should also remove files it cannot read: they could
# never be served, so they are only taking up space.

# %%
ex1.check_invalidation(DiskCache)

# %%
clock = wbc.ManualClock()
ttl_cache = DiskCache(wbc.fresh_cache_dir("ex1/ttl_demo"), ttl=60, clock=clock)
ttl_cache.put("capital-france", {"answer": "Paris"})
clock.advance(59)
print("after 59 s:", ttl_cache.get("capital-france"))
clock.advance(2)
print("after 61 s:", ttl_cache.get("capital-france"))
v2 = DiskCache(ttl_cache.directory.parent, namespace="v2", clock=clock)
print("v2 sees v1 entries?", v2.get("capital-france") is not None)

# %% nbgrader={"grade": true, "grade_id": "test_invalidation", "points": 2}
with tempfile.TemporaryDirectory() as tmp_dir:
    clock = wbc.ManualClock()
    cache = DiskCache(tmp_dir, ttl=10, clock=clock)
    cache.put("k", "v")
    clock.advance(11)
    assert cache.get("k") is None, "an entry older than the TTL must be a miss"
    cache.put("k", "v")
    assert cache.invalidate("k") is True and cache.get("k") is None
    ### BEGIN HIDDEN TESTS
    assert cache.invalidate("k") is False
    clock.advance(5)
    cache.put("fresh", 1)
    assert cache.get("fresh") == 1
    clock.advance(10)  # "fresh" is exactly 10 s old: not expired yet (older than the TTL expires)
    assert cache.get("fresh") == 1
    forever = DiskCache(tmp_dir, clock=clock)
    clock.advance(10 ** 6)
    assert forever.get("fresh") == 1, "ttl=None never expires"
    for name in ("a", "b", "c"):
        cache.put(name, name)
    clock.advance(100)
    cache.put("d", "d")
    cache.path_for("broken").write_text("{")
    assert cache.invalidate_older_than(50) == 5  # a, b, c, fresh and the broken file
    assert sorted(p.stem for p in cache.directory.glob("*.json")) == ["d"]
    other = DiskCache(tmp_dir, namespace="v2", clock=clock)
    other.put("d", "new")
    assert other.get("d") == "new" and forever.get("d") == "d", "namespaces are separate"
    assert cache.clear() == 1 and cache.get("d") is None
    assert other.get("d") == "new", "clear() only clears its own namespace"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Task 5 — a DSPy module that checks the cache first
#
# Now wrap a real DSPy module. `CachedPredict` holds a `dspy.Predict` and a `DiskCache`. Its
# `forward`:
#
# 1. builds the key from the inputs, the signature (instructions + fields), the model of the LM
#    that will answer, and that LM's `kwargs`. `self.cache_key(inputs)` is given: read it;
# 2. on a hit, counts it and returns `dspy.Prediction(**cached)` **without calling the LM**;
# 3. on a miss, counts it, calls `self.predict(**inputs)`, stores `dict(prediction)` (the output
#    fields, which are JSON-friendly) and returns the prediction.
#
# `hit_rate` must be `0.0` before the first call, not a `ZeroDivisionError`.
#
# The inner `dspy.Predict` is built with `cache=False`. That switches DSPy's own cache off for
# it, so what we measure is *our* cache, and each miss really reaches the model. The LM is looked
# up when the call is made, so `with dspy.context(lm=other_lm):` is respected, and it also
# changes the key.

# %% nbgrader={"solution": true, "grade_id": "cached_module"}
class CachedPredict(dspy.Module):
    """`dspy.Predict` behind a `DiskCache`: repeated calls are answered from disk."""

    def __init__(self, signature: str | type[dspy.Signature] = "question -> answer", *, cache: DiskCache) -> None:
        super().__init__()
        self.predict = dspy.Predict(signature, cache=False)  # DSPy's own cache off: we measure ours
        self.cache = cache
        self.hits = 0
        self.misses = 0

    def _lm(self) -> dspy.LM:
        lm = self.predict.lm or dspy.settings.lm
        if lm is None:
            raise wb.BackendError("No LM is configured: run `lm = wb.setup()` first, or use dspy.context(lm=...).")
        return lm

    def cache_key(self, inputs: dict) -> str:
        """The key of a call with `inputs`: everything that could change its answer."""
        lm = self._lm()
        signature = self.predict.signature
        return make_cache_key(inputs, signature=f"{signature.instructions}\n{signature.signature}",
                              model=lm.model, lm_settings=lm.kwargs)

    @property
    def hit_rate(self) -> float:
        """Hits / calls so far; 0.0 before the first call."""
        # calls = self.hits + self.misses — and no division when there were none
        ### BEGIN SOLUTION
        calls = self.hits + self.misses
        return self.hits / calls if calls else 0.0
        ### END SOLUTION

    def forward(self, **inputs: Any) -> dspy.Prediction:
        """Answer from the cache if possible, else from the LM (and remember the answer)."""
        # Steps: key = self.cache_key(inputs); cached = self.cache.get(key)
        #        hit:  self.hits += 1; return dspy.Prediction(**cached)
        #        miss: self.misses += 1; prediction = self.predict(**inputs)
        #              self.cache.put(key, dict(prediction)); return prediction
        ### BEGIN SOLUTION
        key = self.cache_key(inputs)
        cached = self.cache.get(key)
        if cached is not None:
            self.hits += 1
            return dspy.Prediction(**cached)
        self.misses += 1
        prediction = self.predict(**inputs)
        self.cache.put(key, dict(prediction))
        return prediction
        ### END SOLUTION


# %%
ex1.check_cached_module(CachedPredict, DiskCache)

# %% nbgrader={"grade": true, "grade_id": "test_cached_module", "points": 3}
sim = wb.sim_lm(latency=0.01)
with tempfile.TemporaryDirectory() as tmp_dir, dspy.context(lm=sim):
    program = CachedPredict(cache=DiskCache(tmp_dir))
    assert program.hit_rate == 0.0, "hit_rate before any call must be 0.0"
    first = program(question="What is DSPy?")
    program(question="How do I optimize?")
    again = program(question="What is DSPy?")
    assert (program.hits, program.misses) == (1, 2)
    assert again.answer == first.answer and sim.engine.stats.calls == 2, "a hit must not call the LM"
    ### BEGIN HIDDEN TESTS
    assert abs(program.hit_rate - 1 / 3) < 1e-9
    reloaded = CachedPredict(cache=DiskCache(tmp_dir))
    assert reloaded(question="How do I optimize?").answer.endswith("How do I optimize?")
    assert (reloaded.hits, reloaded.misses, sim.engine.stats.calls) == (1, 0, 2), "entries persist across instances"
    hot = wb.sim_lm(latency=0.01, temperature=0.9)
    with dspy.context(lm=hot):
        program(question="What is DSPy?")
    assert (program.misses, hot.engine.stats.calls) == (3, 1), "another temperature must miss"
    other_model = dspy.LM("sim/another-model", engine=wb.lm.SimEngine(latency=0.01))
    with dspy.context(lm=other_model):
        program(question="What is DSPy?")
    assert program.misses == 4, "another model must miss"
    french = CachedPredict(dspy.Signature("question -> answer", "Answer in French."), cache=DiskCache(tmp_dir))
    french(question="What is DSPy?")
    assert (french.hits, french.misses) == (0, 1), "other instructions must miss"
    two_outputs = CachedPredict("question -> topic, answer", cache=DiskCache(tmp_dir))
    p1 = two_outputs(question="What is DSPy?")
    p2 = two_outputs(question="What is DSPy?")
    assert (two_outputs.hits, two_outputs.misses) == (1, 1) and (p2.topic, p2.answer) == (p1.topic, p1.answer)
    ### END HIDDEN TESTS

# %% [markdown]
# ### The three-query run, on the course model
#
# The cache folder is emptied first, so the run starts cold each time: two distinct questions are
# misses, and the repeat is a hit. One warm-up call comes before the clock starts, so the model's
# one-off loading time is not counted against the cache.

# %%
test_inputs = [
    {"question": "What is DSPy?"},
    {"question": "How do I optimize?"},
    {"question": "What is DSPy?"},  # a repeat: answered from the cache
]
program = CachedPredict(cache=DiskCache(wbc.fresh_cache_dir("ex1/three_queries")))
dspy.Predict("question -> answer", cache=False)(question="Warm-up: say hello.")  # load the model before timing

start = time.perf_counter()
results = [program(**inp) for inp in test_inputs]
cached_seconds = time.perf_counter() - start

print(f"Cache hits: {program.hits}, misses: {program.misses}")
print(f"Hit rate: {program.hit_rate:.1%}")
print("Repeat answered identically:", results[2].answer == results[0].answer)

# %% [markdown]
# Without the cache, the same three questions go to the model three times. We use a plain
# `dspy.Predict` with DSPy's cache off as well. The times depend on your machine, so the next
# cell's output is not checked.
#
# The saving is exactly the one skipped call. The small local model answers a short question in
# well under a second, and answer lengths vary, so the difference here can be small and noisy.
# Against a hosted model, every skipped call saves a network round trip and its tokens. The
# stream below, where two calls in three are repeats, shows the effect more clearly.

# %% tags=["nbval-ignore-output"]
uncached = dspy.Predict("question -> answer", cache=False)
start = time.perf_counter()
for inp in test_inputs:
    uncached(**inp)
uncached_seconds = time.perf_counter() - start
print(f"Time with our cache   : {cached_seconds:.2f}s  (2 LM calls)")
print(f"Time without any cache: {uncached_seconds:.2f}s  (3 LM calls)")

# %% [markdown]
# ## A realistic stream: latency per call and hit rate over time
#
# Real traffic is skewed: a handful of questions make up most of it. `wbc.zipf_stream` draws 30
# questions from a list of 12, with the k-th most popular question drawn with weight 1/k. The
# draw is seeded, so the stream is the same on every run. Every distinct question is a miss the
# first time it is asked, and a hit after that.

# %%
stream = wbc.zipf_stream(n=30, seed=0)
streamed = CachedPredict(cache=DiskCache(wbc.fresh_cache_dir("ex1/stream")))
records = wbc.run_stream(streamed, stream)
print(f"{len(stream)} calls, {len(set(stream))} distinct questions")
print(f"Cache hits: {streamed.hits}, misses: {streamed.misses}, hit rate: {streamed.hit_rate:.1%}")

# %% tags=["nbval-ignore-output"]
wbc.show_figure(wbc.stream_figure(records))
hit_ms = [r.seconds * 1000 for r in records if r.hit]
miss_ms = [r.seconds * 1000 for r in records if not r.hit]
print(f"median hit {wbc.p50(hit_ms):.2f} ms, median miss {wbc.p50(miss_ms):.0f} ms")

# %% [markdown]
# The cumulative hit rate climbs as the popular questions come back, then levels off near the
# share of repeats in the traffic. That share is the best *any* exact-match cache can do on this
# stream.

# %% [markdown]
# ## DSPy's built-in cache
#
# DSPy already caches every `dspy.LM` call. It has a memory tier (an LRU of up to a million
# entries) and a disk tier (`diskcache`, backed by SQLite, in `~/.dspy_cache` by default). Both
# are switched with `dspy.configure_cache(...)`. `wb.setup()` keeps it **memory-only** so that a
# fresh kernel starts cold. Here we switch the disk tier on, into `.workbook_cache/ex1/dspy_disk`:
#
# ```python
# dspy.configure_cache(enable_disk_cache=True, enable_memory_cache=True, disk_cache_dir=...)
# ```
#
# DSPy does not count hits. You can spot one in the LM's history, though: a call served from the
# cache records `usage == {}`, because no tokens were spent.

# %%
dspy_dir = wbc.use_dspy_disk_cache("ex1/dspy_disk")  # wraps dspy.configure_cache(..., disk_cache_dir=...)
print("DSPy disk cache in:", dspy_dir.as_posix())


def last_call_was_cached(lm: dspy.LM) -> bool:
    """True when the LM's most recent call was answered by DSPy's cache (no tokens used)."""
    return lm.history[-1]["usage"] == {}


builtin = dspy.Predict("question -> answer")
builtin(question="What is a cache key?")
print("1st call cached?", last_call_was_cached(lm))
builtin(question="What is a cache key?")
print("2nd call cached?", last_call_was_cached(lm))

# %% [markdown]
# **Bypassing it.** Pass `cache=False` for a single call, or `rollout_id` to get a *separate*
# entry for the same prompt. The `rollout_id` is part of the key but is never sent to the
# provider. That is how you draw several different samples at a non-zero temperature and still
# cache each one.

# %%
builtin(question="What is a cache key?", config={"cache": False})
print("cache=False      -> cached?", last_call_was_cached(lm))
builtin(question="What is a cache key?", config={"rollout_id": 1, "temperature": 1.0})
print("rollout_id=1     -> cached?", last_call_was_cached(lm))
builtin(question="What is a cache key?", config={"rollout_id": 1, "temperature": 1.0})
print("rollout_id=1 again -> cached?", last_call_was_cached(lm))

# %% [markdown]
# **Pitfall 1: sync and async calls have different keys.** DSPy puts the name of the function
# that made the call into the key (`litellm_completion` or `alitellm_completion`). An answer you
# warmed with `predict(...)` is a *miss* for `await predict.acall(...)`. Warm the cache the same
# way your server will call it.

# %%
answer = await builtin.acall(question="What is a cache key?")
print("acall after a sync warm-up -> cached?", last_call_was_cached(lm))
answer = await builtin.acall(question="What is a cache key?")
print("second acall              -> cached?", last_call_was_cached(lm))

# %% [markdown]
# **Pitfall 2: the endpoint is not part of the key.** DSPy drops `api_key`, `api_base` and
# `base_url` before hashing. Two servers that both call their model `"openai/llama-3"` (say your
# laptop and the production cluster) share cache entries. Put the endpoint into the model name,
# or into a `rollout_id`, if they can disagree.

# %%
from dspy.clients.execution import IGNORED_CACHE_KEYS

request = {"model": "openai/llama-3", "messages": [{"role": "user", "content": "hi"}]}
key_a = dspy.cache.cache_key({**request, "api_base": "http://laptop:8000"}, IGNORED_CACHE_KEYS)
key_b = dspy.cache.cache_key({**request, "api_base": "https://prod.example.com"}, IGNORED_CACHE_KEYS)
print("ignored in the key:", IGNORED_CACHE_KEYS)
print("two endpoints, same key?", key_a == key_b)

# %% [markdown]
# **Pitfall 3: no TTL and no invalidation by age.** `dspy.cache.put(request, value)` takes no
# expiry. An entry lives until the disk tier's size limit (30 GB by default) evicts it. Your
# options are a new `rollout_id` or model name (a namespace, as in Task 4), deleting the folder,
# or a `Cache` subclass that passes `expire=` to `diskcache`.
#
# ### Hit latency: ours against DSPy's, in one run
#
# One warm-up miss each, then 100 timed hits. The DSPy disk hit empties DSPy's memory tier
# before every call, so each hit really comes from disk. The goal is for ours to be no slower than
# DSPy's memory hit.
#
# DSPy computes its key from the finished request, so even a hit pays for building the prompt
# first. With the JSON adapter, that includes generating a JSON schema with pydantic, which is
# most of the cost. Then it parses the cached reply and deep-copies it. Our key is computed from
# the inputs before any of that happens, so a hit is one small file read. The price is that our
# key must name everything the prompt depends on. DSPy's key sees the actual prompt, so it also
# notices demos added by an optimiser or a change of adapter. To get the same from ours, add
# those to the key yourself.

# %% tags=["nbval-ignore-output"]
hit_question = {"question": "What is DSPy?"}
ours = CachedPredict(cache=DiskCache(wbc.fresh_cache_dir("ex1/latency")))
ours(**hit_question)
wbc.use_dspy_disk_cache("ex1/dspy_latency")
theirs = dspy.Predict("question -> answer")
theirs(**hit_question)
samples = {
    "our DiskCache hit": wbc.time_calls(lambda: ours(**hit_question), 100),
    "DSPy memory hit": wbc.time_calls(lambda: theirs(**hit_question), 100),
    "DSPy disk hit": wbc.time_calls(lambda: theirs(**hit_question), 100, before_each=dspy.cache.reset_memory_cache),
}
display(pd.DataFrame(wbc.latency_table(samples)).set_index("what"))
wbc.use_dspy_memory_cache()  # back to the course default

# %% [markdown]
# ## Task 6 (advanced) — partial matching of similar questions
#
# "What is DSPy?", "what is dspy" and "  What is DSPy ?? " are the same question, but an
# exact-match key sees three different strings. A **normalised** key (lower case, punctuation
# dropped, whitespace collapsed) catches these for free. Going further, to "close enough"
# questions, takes a **similarity measure** and a **threshold**.
#
# This is where caching gets dangerous. "What is the capital of France?" and "What is the capital
# of Spain?" share 5 of their 7 distinct words, yet they need different answers. Surface
# similarity knows nothing about meaning. Keep the threshold high, and treat a wrong hit as far
# worse than a miss.
#
# Write:
#
# * `normalize_question(text)`: lower case; every run of characters other than letters and digits
#   becomes one space; strip the ends. `re.findall(r"[a-z0-9]+", text.lower())` does most of it.
# * `question_similarity(a, b)`: the **token Jaccard** index of the normalised questions,
#   |A ∩ B| / |A ∪ B| over their sets of words. Two empty questions count as 1.0.
# * `SimilarQuestionCache.get(question)`: the answer stored under the **most similar** question,
#   if that similarity is ≥ `self.threshold`, else `None`. `put` is given.

# %% nbgrader={"solution": true, "grade_id": "similar_cache"}
def normalize_question(text: str) -> str:
    """Lower case, punctuation and extra whitespace removed: 'What is  DSPy?!' -> 'what is dspy'."""
    # re.findall(r"[a-z0-9]+", text.lower()) gives the words: join them with single spaces
    ### BEGIN SOLUTION
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))
    ### END SOLUTION


def question_similarity(a: str, b: str) -> float:
    """Token Jaccard similarity of two questions after normalising, from 0.0 to 1.0."""
    # A, B = the sets of words of each normalised question; |A & B| / |A | B|; both empty -> 1.0
    ### BEGIN SOLUTION
    words_a, words_b = set(normalize_question(a).split()), set(normalize_question(b).split())
    if not words_a and not words_b:
        return 1.0
    return len(words_a & words_b) / len(words_a | words_b)
    ### END SOLUTION


class SimilarQuestionCache:
    """An in-memory cache that also answers questions close enough to one it has seen."""

    def __init__(self, threshold: float = 0.9) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold is a similarity in (0, 1], got {threshold}")
        self.threshold = threshold
        self.entries: dict[str, Any] = {}  # normalised question -> answer

    def put(self, question: str, answer: Any) -> None:
        """Remember `answer` for `question` (stored under its normalised form)."""
        self.entries[normalize_question(question)] = answer

    def get(self, question: str) -> Any | None:
        """The answer of the most similar stored question if similar enough, else None."""
        # score every stored question with question_similarity; keep the best score and its answer;
        # return that answer only if the best score >= self.threshold
        ### BEGIN SOLUTION
        best_score, best_answer = 0.0, None
        for stored, answer in self.entries.items():
            score = question_similarity(question, stored)
            if score > best_score:
                best_score, best_answer = score, answer
        return best_answer if best_score >= self.threshold else None
        ### END SOLUTION


# %%
ex1.check_similar_cache(SimilarQuestionCache, normalize_question)

# %%
similar = SimilarQuestionCache(threshold=0.9)
similar.put("What is the capital of France?", "Paris")
for asked in ["what is the capital of france", "  WHAT is the capital of France?!  ",
              "What is the capital of Spain?", "What's the capital of France?"]:
    score = max(question_similarity(asked, stored) for stored in similar.entries)
    print(f"{asked!r:40} similarity {score:.2f} -> {similar.get(asked)!r}")

# %% [markdown]
# The last line shows what the threshold costs. "What's" normalises to the two words "what s",
# so a harmless rephrasing becomes a miss. That is the right way to fail. Before you lower the
# threshold, look at what else would start to match. Embeddings (semantic similarity) catch more
# rephrasings, but they also happily match France with Spain. Production systems that serve
# "similar" answers add a second check, such as the same named entities, or a small model that
# asks "are these the same question?".

# %% nbgrader={"grade": true, "grade_id": "test_similar_cache", "points": 2}
assert normalize_question("  What is   DSPy?! ") == "what is dspy"
sc = SimilarQuestionCache()
sc.put("What is the capital of France?", "Paris")
assert sc.get("what is the capital of france") == "Paris", "case and punctuation must not matter"
assert sc.get("What is the capital of Spain?") is None, "a different question must not be answered from the cache"
### BEGIN HIDDEN TESTS
assert sc.get("\tWHAT   is the CAPITAL of France ??") == "Paris"
assert SimilarQuestionCache().get("anything") is None
assert question_similarity("a b c d", "a b c e") == 3 / 5
assert question_similarity("", "") == 1.0 and question_similarity("a", "") == 0.0
loose = SimilarQuestionCache(threshold=0.5)
loose.put("red green blue", "colours")
loose.put("red green blue yellow", "four colours")
assert loose.get("red green blue yellow!") == "four colours", "the most similar entry wins"
assert loose.get("red green") == "colours"  # 2/3 vs 2/4
assert loose.get("purple") is None
strict = SimilarQuestionCache(threshold=1.0)
strict.put("How many legs does a spider have?", "8")
assert strict.get("how many legs does a spider have") == "8"
assert strict.get("How many legs does an ant have?") is None
### END HIDDEN TESTS

# %% [markdown]
# ## When *not* to cache, and production notes
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
#   so each worker warms its own.
# * **Personal data.** A cache file is a copy of the user's question and the model's answer,
#   which may contain names, emails or health details. It needs the same care as the database:
#   retention limits (TTL + `invalidate_older_than`), deletion on request (`invalidate`),
#   permissions on the folder, and no caching at all for some inputs. A hashed *key* does not
#   protect anything, because the value is stored in the clear.
# * **Security.** Never unpickle cache files you did not write. That is why this cache stores
#   JSON, and why DSPy offers `restrict_pickle=True`.

# %% [markdown]
# ## Summary
#
# You built a cache whose key covers everything that changes the answer. Its writes are atomic,
# and a corrupt file costs one miss instead of a crash. It has counters, a TTL, four ways to
# invalidate, and a DSPy module that uses it. You also saw where DSPy's own cache differs (no
# TTL, sync/async keys, endpoint-blind keys) and why "similar" is a much stronger claim than
# "equal". The bench script `bench/bench_cache.py` repeats the latency comparison with 200+ hits
# per row.
