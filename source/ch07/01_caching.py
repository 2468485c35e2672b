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
# different model, crash on a half-written file, serve yesterday's answer after you changed the
# prompt, or write outside its own folder. In this notebook you first look at what DSPy's
# built-in cache already does, then build a disk cache step by step, wrap a DSPy module with it
# and measure it.
#
# **Learning objectives** — you will learn to
#
# * read DSPy's built-in cache and LM history, and say what they do not give you;
# * build a cache key that changes whenever the answer (or its type) could change;
# * write files atomically and treat every damaged file as a miss, never a crash;
# * expire and invalidate entries, and clean up after writers that died mid-write;
# * wrap a DSPy module so that a failing cache never loses an answer you already paid for.
#
# **Prerequisites:** Python classes and exceptions, `json` and `pathlib`; a DSPy `Predict` call
# (`dspy.Predict("question -> answer")(question=...)`). No provider account: the course model
# runs on this machine.
#
# | Part | You write | Time | Points |
# |---|---|---|---|
# | DSPy's own cache (read and run) | — | 5 min | — |
# | Task 1 | `make_cache_key`: a key that changes whenever the answer could | 10 min | 2 |
# | Task 2 | `write_json_atomic`, `read_json_entry`: no half-written files | 7 min | 2 |
# | Task 3 | `DiskCache.get` / `put`: hits, misses, damaged file = miss | 5 min | 2 |
# | Task 4 | `ExpiringCache`: TTL, damaged timestamps, invalidation | 8 min | 2 |
# | Task 5 | `CachedPredict`: a DSPy module that checks the cache first | 7 min | 3 |
# | **Core path** | | **≈ 40 min** | **11** |
# | Going further (optional) | `SimilarQuestionCache`: similar questions | 15 min | 2 bonus |
#
# The going-further task is **extra credit**: nbgrader lists its 2 points, but the core 11 points
# are the full grade for this exercise.
#
# **How to work.** After each task, run the **self-check** cell under it (`ex1.check_…`). It tells
# you at once whether your code behaves, and if not, what it did. Stuck? `ex1.hint("key")` shows
# the next hint for a task (call it again for more). The locked cells after each self-check are
# what grading runs, plus hidden tests of exactly the behaviours the task's text lists: ✅ on every
# self-check means your solution passes them. Each task is graded on its own, so a mistake in one
# task never costs points in another.

# %%
import dspy_workbook as wb

lm = wb.setup()

# %%
import functools
import hashlib
import json
import math
import os
import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import dspy
from IPython.display import display
from pydantic import TypeAdapter

from dspy_workbook import caching as wbc
from dspy_workbook.checks import ex1
from dspy_workbook.stats import summary_table

# %% [markdown]
# ## Before you build anything: DSPy's own cache
#
# DSPy already caches every `dspy.LM` call. It has a memory tier (an LRU of up to a million
# entries) and a disk tier (`diskcache`, backed by SQLite, in `~/.dspy_cache` by default). Both
# are switched with `dspy.configure_cache(...)`. `wb.setup()` keeps it **memory-only** so that a
# fresh kernel starts cold. Here we switch the disk tier on, into the workbook's cache folder
# (`.workbook_cache/`, or `$WORKBOOK_CACHE_DIR` when set):
#
# ```python
# dspy.configure_cache(enable_disk_cache=True, enable_memory_cache=True, disk_cache_dir=...)
# ```
#
# DSPy does not count hits. You can spot one in the LM's **history**, though: every call is
# recorded in `lm.history`, and a call served from the cache records `usage == {}`, because no
# tokens were spent.

# %%
dspy_dir = wbc.use_dspy_disk_cache(
    "ex1/dspy_disk"
)  # wraps dspy.configure_cache(..., disk_cache_dir=...)
print("DSPy disk cache in:", dspy_dir.name)


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
print("cache=False        -> cached?", last_call_was_cached(lm))
builtin(question="What is a cache key?", config={"rollout_id": 1, "temperature": 1.0})
print("rollout_id=1       -> cached?", last_call_was_cached(lm))
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
key_b = dspy.cache.cache_key(
    {**request, "api_base": "https://prod.example.com"}, IGNORED_CACHE_KEYS
)
print("ignored in the key:", IGNORED_CACHE_KEYS)
print("two endpoints, same key?", key_a == key_b)
wbc.use_dspy_memory_cache()  # back to the course default

# %% [markdown]
# **Pitfall 3: no TTL and no invalidation by age.** `dspy.cache.put(request, value)` takes no
# expiry. An entry lives until the disk tier's size limit (30 GB by default) evicts it. Your
# options are a new `rollout_id` or model name, deleting the folder, or a `Cache` subclass that
# passes `expire=` to `diskcache`.
#
# ### So why build a cache of our own?
#
# DSPy's cache is a good default, and for many programs it is all you need. You build your own
# when you need what it lacks:
#
# * **expiry and invalidation**: a TTL per cache, deleting one wrong answer, a nightly clean-up;
# * **counters**: hits, misses and a hit rate you can report and alert on;
# * **a key you control**: computed from the inputs *before* DSPy builds a prompt, so a hit skips
#   that work too, and namespaced (`v1`, `v2`) so a deploy can retire every old entry at once;
# * **a cache around a whole module** (several LM calls, retrieval, post-processing), not just
#   one LM call.
#
# The price: you now own the correctness. The rest of this notebook is about getting it right.
#
# ## What a naive cache gets wrong
#
# A first attempt usually hashes the inputs with md5, uses the hash as a file name in `.cache/`,
# and counts hits and misses. It has six problems, and each task fixes some of them:
#
# | Problem | Why it hurts | Fixed in |
# |---|---|---|
# | md5 of the **inputs only** | a new model, temperature or output type: same answer | Task 1 |
# | `json.dump` into the final file | a crash leaves half a file; the next read crashes | Task 2 |
# | a damaged file raises | one bad file stops the program instead of costing one call | Tasks 2–3 |
# | unchecked keys as file names | `../../x` writes or deletes outside the cache | Task 3 |
# | no expiry, no way to remove | stale answers live forever; the only fix is `rm -rf` | Task 4 |
# | `hits / (hits + misses)`; failed writes | `ZeroDivisionError`; lost answers | Task 5 |
#
# The cache files in this notebook live under `.workbook_cache/ex1/` (git and nbgrader ignore
# it). Each demo starts by emptying its own sub-folder (`wbc.fresh_cache_dir`), so every run of
# the notebook gives the same counts.

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
# * the **signature**: its instructions and fields, including each output field's *type* and
#   description (a `str` answer and an `int` answer are different answers). Task 5 passes all of
#   that to you as one string;
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
print(
    "large model, temperature 0.9:",
    inputs_only_key(question)[:12],
    "← same key, so the same stale answer",
)

# %% [markdown]
# There is one more trap: **JSON merges values that Python keeps apart.** A tuple is written as
# a list, and with `default=str` a `Decimal("1.10")` is written as the string `"1.10"`. A program
# can answer differently for each, so the key must tell them apart:

# %%
from decimal import Decimal

for left, right in [(["a", "b"], ("a", "b")), (Decimal("1.10"), "1.10"), ({1: "x"}, {"1": "x"})]:
    same = json.dumps(left, default=str) == json.dumps(right, default=str)
    print(f"{left!r:>16} vs {right!r:<12} same JSON text? {same}")

# %% [markdown]
# Write `make_cache_key(inputs, *, signature, model, lm_settings=None)`. What is graded:
#
# * it returns the **SHA-256 hex digest**: exactly 64 lowercase hex characters (`[0-9a-f]{64}`),
#   which is also a safe file name;
# * the same call gives the same key, also with the inputs' keys in another order, and
#   `lm_settings=None` gives the same key as `{}`;
# * changing any one of the inputs, `signature`, `model` or `lm_settings` changes the key;
# * values JSON would merge give different keys: a list and a tuple with the same items,
#   `Decimal("1.10")` and `"1.10"`, the dict keys `1` and `"1"` — in the inputs and in the settings.
#
# One way: first turn the value into JSON that *records the type* where JSON would lose it (a
# small recursive function, `tag_types` below), then `json.dumps(..., sort_keys=True)` and hash.
# We use SHA-256 rather than md5 because md5 collisions can be built on purpose, and a key someone
# could forge is a bad habit to get into. `ex1.hint("key")` helps if you are stuck.


# %% nbgrader={"solution": true, "grade_id": "cache_key"}
def tag_types(value: Any) -> Any:
    """`value` as JSON-ready data that keeps apart what JSON alone would merge (tuple/list, ...)."""
    ### BEGIN SOLUTION
    if value is None or isinstance(value, bool | int | float | str):
        return value  # JSON already tells these apart: null, true, 1, 1.0, "1"
    if isinstance(value, dict):
        pairs = [[tag_types(k), tag_types(v)] for k, v in value.items()]
        return {"dict": sorted(pairs, key=lambda pair: json.dumps(pair, sort_keys=True))}
    if isinstance(value, list | tuple):
        return {type(value).__name__: [tag_types(item) for item in value]}
    if isinstance(value, set | frozenset):
        items = [tag_types(item) for item in value]
        return {
            type(value).__name__: sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
        }
    return {type(value).__qualname__: str(value)}  # Decimal("1.10"), dates, ...: type + text
    ### END SOLUTION


def make_cache_key(
    inputs: dict, *, signature: str, model: str, lm_settings: dict | None = None
) -> str:
    """SHA-256 hex digest of all that can change the answer: inputs, signature, model, settings."""
    ### BEGIN SOLUTION
    payload = {
        "inputs": tag_types(inputs),
        "signature": signature,
        "model": model,
        "lm_settings": tag_types(lm_settings or {}),
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
    ### END SOLUTION


# %%
ex1.check_cache_key(make_cache_key)

# %% nbgrader={"grade": true, "grade_id": "test_cache_key", "points": 2}
import re as _re

base = dict(signature="question -> answer", model="sim/a", lm_settings={"temperature": 0.0})
k = make_cache_key({"question": "What is DSPy?"}, **base)
assert isinstance(k, str) and _re.fullmatch(r"[0-9a-f]{64}", k), (
    f"the key must be 64 lowercase hex characters, got {k!r}"
)
assert k == make_cache_key({"question": "What is DSPy?"}, **base), "same call, different key"
assert k != make_cache_key({"question": "What is DSPy?"}, **{**base, "model": "sim/b"}), (
    "the model must be in the key"
)
### BEGIN HIDDEN TESTS
from decimal import Decimal as _Decimal

two = {"question": "q", "context": "c"}
assert make_cache_key(two, **base) == make_cache_key(dict(reversed(list(two.items()))), **base)
assert k != make_cache_key({"question": "What is dspy?"}, **base)
assert k != make_cache_key(
    {"question": "What is DSPy?"}, **{**base, "signature": "question -> answer\nBe brief."}
)
assert k != make_cache_key(
    {"question": "What is DSPy?"}, **{**base, "lm_settings": {"temperature": 0.9}}
)
assert k != make_cache_key(
    {"question": "What is DSPy?"}, **{**base, "lm_settings": {"temperature": 0.0, "max_tokens": 20}}
)
plain = dict(signature="s", model="m")
assert make_cache_key({"q": 1}, **plain) == make_cache_key({"q": 1}, **plain, lm_settings={}), (
    "None settings = {}"
)
assert make_cache_key({"q": ["a", "b"]}, **plain) != make_cache_key({"q": ("a", "b")}, **plain), (
    "list vs tuple"
)
assert make_cache_key({"q": _Decimal("1.10")}, **plain) != make_cache_key({"q": "1.10"}, **plain), (
    "Decimal vs str"
)
assert make_cache_key({"q": {1: "x"}}, **plain) != make_cache_key({"q": {"1": "x"}}, **plain), (
    "1 vs '1' as dict keys"
)
assert make_cache_key({"q": 1}, **plain, lm_settings={"stop": ["x"]}) != make_cache_key(
    {"q": 1}, **plain, lm_settings={"stop": ("x",)}
), "list vs tuple in the settings"
assert make_cache_key({"q": 1}, **plain) != make_cache_key({"q": True}, **plain)
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
# 1. write the whole document to a *temporary file in the same folder*, whose name ends in
#    `.tmp` (`tempfile.mkstemp(dir=path.parent, suffix=".tmp")`);
# 2. `os.replace(tmp, path)`, which swaps the new file in as a single step. Readers see either
#    the old file or the new one, never a mix.
#
# The temporary file has to be in the **same folder**: `os.replace` is a rename, and a rename
# only works within one file system. If the temporary file sits in `/tmp` on another disk,
# `os.replace` does not fall back to copying; it fails with `OSError: [Errno 18] Invalid
# cross-device link` (`EXDEV`). If anything fails, delete the temporary file and re-raise: the
# old file stays as it was, and no `.tmp` file is left behind. (A writer that is *killed* cannot
# clean up after itself; Task 3's given code sweeps up such orphans.)
#
# Reading is the other half: **a missing, truncated or damaged file is a miss, never a crash.**
# What `read_json_entry` must survive, and what it raises on each:
#
# | The file | What Python raises |
# |---|---|
# | missing or unreadable | `OSError` (`FileNotFoundError`, `IsADirectoryError`, ...) |
# | truncated JSON, or bytes that are not UTF-8 | `ValueError` (`JSONDecodeError` is one) |
# | valid JSON nested thousands of levels deep (`[[[[…`) | `RecursionError` |
# | valid JSON that is not an object (`[1, 2]`) | nothing: check the type yourself |
#
# In each case return `None`. What is graded: the round trip; `None` for each row above; the
# write ends with `os.replace` from a `.tmp` file in the target's folder; a write that fails
# (say, a value JSON cannot encode) raises, keeps the previous file and leaves no temporary file.
# Stuck? `ex1.hint("atomic_io")`.


# %% nbgrader={"solution": true, "grade_id": "atomic_io"}
def write_json_atomic(path: Path | str, data: dict) -> None:
    """Write `data` as JSON to `path` atomically: a `.tmp` file beside it, then `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # parents=True: nested cache folders work
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
    """The dict stored at `path`, or None if it is missing, unreadable, damaged or not a dict."""
    ### BEGIN SOLUTION
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
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
entry_path.write_text("[" * 100_000)
print("nested   :", read_json_entry(entry_path))
print("files left in the folder:", sorted(p.name for p in demo_dir.iterdir()))

# %% nbgrader={"grade": true, "grade_id": "test_atomic_io", "points": 2}
import tempfile as _tempfile
from pathlib import Path as _Path

with _tempfile.TemporaryDirectory() as tmp_dir:
    target = _Path(tmp_dir) / "nested" / "entry.json"
    write_json_atomic(target, {"value": {"answer": "42"}})
    assert read_json_entry(target) == {"value": {"answer": "42"}}, "round trip failed"
    target.write_text('{"value": {"answ')
    assert read_json_entry(target) is None, "a truncated file must read as None (a miss)"
    ### BEGIN HIDDEN TESTS
    import os as _os
    from unittest import mock as _mock

    assert read_json_entry(_Path(tmp_dir) / "missing.json") is None
    assert read_json_entry(_Path(tmp_dir)) is None, "a folder is not an entry"
    target.write_bytes(b"\xff\xfe\x00garbage")
    assert read_json_entry(target) is None
    target.write_text("[1, 2, 3]")
    assert read_json_entry(target) is None
    target.write_text("[" * 50_000 + "]" * 50_000)
    assert read_json_entry(target) is None, "deeply nested JSON must be a miss"
    real_replace = _os.replace
    with _mock.patch("os.replace", wraps=real_replace) as spy:
        write_json_atomic(target, {"value": 1})
    assert spy.called, "write with os.replace"
    src, dst = spy.call_args.args[:2]
    assert (
        _Path(src).parent == _Path(dst).parent
        and _Path(dst) == target
        and str(src).endswith(".tmp")
    )
    write_json_atomic(target, {"value": "old"})
    try:
        write_json_atomic(target, {"value": object()})  # cannot be encoded: the write must fail
    except TypeError:
        pass
    else:
        raise AssertionError("an unencodable value must raise")
    assert read_json_entry(target) == {"value": "old"}, (
        "a failed write must leave the old file intact"
    )
    assert sorted(p.name for p in target.parent.iterdir()) == ["entry.json"], (
        "temp files left behind"
    )
    ### END HIDDEN TESTS

# %% [markdown]
# ## Task 3 — the disk cache: get, put, hits and misses
#
# `DiskCache` keeps one JSON file per key in `directory/namespace/`. Each file holds
# `{"key": ..., "created": ..., "value": ...}`, where `created` is a timestamp from
# `self.clock()`. The time comes from `clock` rather than straight from `time.time` so that tests
# can move time by hand (`wbc.ManualClock`) instead of sleeping.
#
# The namespace is a **version**: when you change the program in a way the key cannot see (say,
# the post-processing of answers), start using `namespace="v2"`. Every old entry is then out of
# reach at once, and the old folder can be deleted at leisure.
#
# Read the given code first; it fixes two problems of the naive cache:
#
# * `path_for(key)` **refuses keys that are not plain file names** (letters, digits, `-` and `_`,
#   at most 128 of them). A key is turned into a path, and a path such as `../../x` or `/tmp/x`
#   would otherwise let `put` write, and `invalidate` delete, outside the cache folder. Keys from
#   `make_cache_key` always pass.
# * `remove_orphans()` deletes `*.tmp` files older than a minute. A writer that is killed between
#   writing its temporary file and `os.replace` leaves one behind, and nothing else would ever
#   remove it. It goes by age, because a *young* `.tmp` file may belong to a writer that is still
#   running. Opening a cache sweeps once.
#
# Write `get` and `put`. What is graded:
#
# * `put(key, value)` writes `{"key": key, "created": self.clock(), "value": value}` to
#   `self.path_for(key)` with `write_json_atomic`.
# * `get(key)` returns the stored value and adds one to `self.hits`; or adds one to `self.misses`
#   and returns `None` when the entry is missing or damaged (`read_json_entry` gives `None`), has
#   no `"value"`, or when `self.is_stale(entry)` is true. `DiskCache.is_stale` is always false;
#   Task 4's subclass overrides it. (Values are never `None` in this exercise, so `None` can stand
#   for "miss".) Stuck? `ex1.hint("disk_cache")`.
#
# Task 3 builds on Task 2: `get` and `put` use your `read_json_entry` and `write_json_atomic`. The
# visible test below goes through them, so Task 2 must at least run; the hidden tests and the
# self-check swap in reference versions, so a subtle slip in Task 2 costs no points in Task 3.

# %% nbgrader={"solution": true, "grade_id": "disk_cache"}
KEY_PATTERN = re.compile(r"[0-9A-Za-z_-]{1,128}")
ORPHAN_SECONDS = 60.0  # a .tmp file this old has no live writer: writes take milliseconds


class DiskCache:
    """A folder of JSON files, one per key, with hit and miss counters."""

    def __init__(self, directory: Path | str, *, namespace: str = "v1", clock=time.time) -> None:
        if not re.fullmatch(r"[\w.-]+", namespace) or set(namespace) == {"."}:
            raise ValueError(
                f"namespace must be a plain folder name such as 'v2', got {namespace!r}"
            )
        self.directory = Path(directory) / namespace
        self.directory.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self.hits = 0
        self.misses = 0
        self.remove_orphans()

    def path_for(self, key: str) -> Path:
        """The file that holds `key`'s entry; a key that is not a plain file name is refused."""
        if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
            raise ValueError(
                "a cache key becomes a file name, so it may only use letters, digits, "
                f"'-' and '_' (1 to 128 of them; make_cache_key gives 64), got {key!r}"
            )
        return self.directory / f"{key}.json"

    def remove_orphans(self, older_than: float = ORPHAN_SECONDS) -> int:
        """Delete `*.tmp` files left by writers killed mid-write, once older than `older_than` s."""
        removed, now = 0, time.time()  # file times are wall-clock times, whatever `clock` is
        for path in self.directory.glob("*.tmp"):
            try:
                if now - path.lstat().st_mtime > older_than:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # its writer finished after all, or another process removed it
        return removed

    def is_stale(self, entry: dict) -> bool:
        """Whether a readable entry must not be served. Here never; `ExpiringCache` overrides it."""
        return False

    def get(self, key: str) -> Any | None:
        """The cached value for `key` (a hit), or None (a miss: absent, damaged or stale)."""
        ### BEGIN SOLUTION
        entry = read_json_entry(self.path_for(key))
        if entry is None or "value" not in entry or self.is_stale(entry):
            self.misses += 1
            return None
        self.hits += 1
        return entry["value"]
        ### END SOLUTION

    def put(self, key: str, value: Any) -> None:
        """Store `value` under `key` (atomically), stamped with the current time."""
        ### BEGIN SOLUTION
        write_json_atomic(self.path_for(key), {"key": key, "created": self.clock(), "value": value})
        ### END SOLUTION


# %%
ex1.check_disk_cache(DiskCache)

# %% nbgrader={"grade": true, "grade_id": "test_disk_cache", "points": 2}
import tempfile as _tempfile
from pathlib import Path as _Path

with _tempfile.TemporaryDirectory() as tmp_dir:
    cache = DiskCache(_Path(tmp_dir) / "a" / "b")
    assert cache.get("k1") is None and (cache.hits, cache.misses) == (0, 1)
    cache.put("k1", {"answer": "42"})
    assert cache.get("k1") == {"answer": "42"} and (cache.hits, cache.misses) == (1, 1)
    ### BEGIN HIDDEN TESTS
    import json as _json
    import os as _os
    from unittest import mock as _mock

    def _reference_read(path):
        try:
            data = _json.loads(_Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return None
        return data if isinstance(data, dict) else None

    def _reference_write(path, data):
        path = _Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with _os.fdopen(fd, "w", encoding="utf-8") as handle:
                _json.dump(data, handle)
            _os.replace(tmp, path)
        except BaseException:
            _Path(tmp).unlink(missing_ok=True)
            raise

    # Task 2's reference functions: a slip there cannot cost points here.
    with _mock.patch.dict(
        globals(), {"read_json_entry": _reference_read, "write_json_atomic": _reference_write}
    ):
        assert DiskCache(_Path(tmp_dir) / "a" / "b").get("k1") == {"answer": "42"}, (
            "entries persist on disk"
        )
        stored = _json.loads(cache.path_for("k1").read_text())
        assert set(stored) == {"key", "created", "value"} and stored["key"] == "k1"
        cache.put("k1", {"answer": "43"})
        assert cache.get("k1") == {"answer": "43"}
        path = cache.path_for("k1")
        path.write_bytes(path.read_bytes()[:7])
        assert cache.get("k1") is None and cache.misses == 2, "a truncated file is a miss"
        path.write_text('{"key": "k1", "created": 0}')
        assert cache.get("k1") is None and cache.misses == 3, "an entry without a value is a miss"
        path.write_text("[" * 50_000)
        assert cache.get("k1") is None and cache.misses == 4, "deeply nested JSON is a miss"
        cache.put("k2", ["a", 1, None, {"x": 2.5}])
        assert cache.get("k2") == ["a", 1, None, {"x": 2.5}]
        assert sorted(p.name for p in cache.directory.iterdir()) == sorted(
            [path.name, cache.path_for("k2").name]
        )

        class _Stale(DiskCache):
            def is_stale(self, entry):
                return entry["value"] == "old"

        stale = _Stale(_Path(tmp_dir) / "s")
        stale.put("a", "old")
        stale.put("b", "new")
        assert (
            stale.get("a") is None
            and stale.get("b") == "new"
            and (stale.hits, stale.misses) == (1, 1)
        ), "get must ask is_stale(entry)"
        clocked = DiskCache(_Path(tmp_dir) / "c", clock=lambda: 1234.5)
        clocked.put("t", 1)
        assert _json.loads(clocked.path_for("t").read_text())["created"] == 1234.5, (
            "created comes from self.clock()"
        )
    ### END HIDDEN TESTS

# %% [markdown]
# ## Task 4 — expiry, damaged timestamps and invalidation
#
# Answers go stale: the facts change, the documents behind them are updated, the model is
# upgraded. `ExpiringCache` is a `DiskCache` with a time-to-live and three ways to remove entries,
# from the finest to the coarsest:
#
# | Tool | Use it when |
# |---|---|
# | **TTL**: older than `ttl` seconds is stale | answers are good for so long: 1 day for news |
# | `invalidate(key)` | you know one answer is wrong (a user reported it) |
# | `invalidate_older_than(seconds)` | a nightly clean-up: reclaim the space of stale entries |
# | `clear()` / a new `namespace` | the program changed in a way the key can't see |
#
# **A timestamp can be damaged, too.** A file edited by hand, written by a buggy version or by a
# machine with a wrong clock may hold `"created": NaN`, `Infinity`, `1e30` (the far future), a
# string, or nothing. Python's `json` module reads `NaN` and `Infinity` happily. With a naive
# `now - created > ttl`, `NaN` compares false and `1e30` gives a negative age, so such an entry is
# **served forever** and survives every clean-up. The rule: an entry's age is known only when
# `created` is a real number (not a `bool`), finite, and not in the future; otherwise the entry
# is damaged, and a damaged entry is stale.
#
# Settings are checked too: `ttl=float("nan")` or `invalidate_older_than(-1)` would silently
# disable expiry, so the given `seconds_setting` refuses them with a clear `ValueError`.
#
# Write `entry_age` and the four methods. What is graded:
#
# * `entry_age(entry, now)`: `now - entry["created"]` when `created` is an `int` or `float` (not
#   a `bool`), finite and not later than `now`; `None` otherwise (missing, text, NaN, ±infinity,
#   future).
# * `is_stale(entry)`: `False` when `self.ttl is None`; else `True` when the age is `None` or
#   greater than `self.ttl` (an entry exactly `ttl` seconds old is still fresh).
# * `invalidate(key)`: deletes the key's file; `True` if there was one, `False` if not.
# * `invalidate_older_than(seconds)`: deletes every entry (`*.json`) whose age is `None` (this
#   includes files that cannot be read) or greater than `seconds`; returns how many.
# * `clear()`: deletes every entry of this namespace only; returns how many.
# * both `invalidate_older_than` and `clear` also call `self.remove_orphans()`.
#
# Stuck? `ex1.hint("expiry")`.
#
# Task 4 is graded on its own: the tests write entry files themselves (no `get` or `put`) and read
# them with a reference `read_json_entry`, so a slip in Tasks 2–3 costs no points here. The class
# extends `DiskCache`, though, so Task 3's cell must run without errors.


# %% nbgrader={"solution": true, "grade_id": "expiry"}
def seconds_setting(name: str, value: Any) -> float:
    """`value` as a number of seconds >= 0, or a ValueError that says what is wrong with it."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(
            f"{name} must be a finite number of seconds >= 0 (for no expiry use ttl=None), "
            f"got {value!r}"
        )
    return float(value)


def entry_age(entry: dict, now: float) -> float | None:
    """Seconds since `entry["created"]`, or None when that timestamp is missing or unusable."""
    ### BEGIN SOLUTION
    created = entry.get("created")
    if isinstance(created, bool) or not isinstance(created, int | float):
        return None
    if not math.isfinite(created) or created > now:
        return None
    return now - created
    ### END SOLUTION


class ExpiringCache(DiskCache):
    """A `DiskCache` whose entries expire after `ttl` seconds, with three ways to invalidate."""

    def __init__(
        self,
        directory: Path | str,
        *,
        namespace: str = "v1",
        ttl: float | None = None,
        clock=time.time,
    ) -> None:
        super().__init__(directory, namespace=namespace, clock=clock)
        self.ttl = None if ttl is None else seconds_setting("ttl", ttl)

    def is_stale(self, entry: dict) -> bool:
        """True when the entry is older than the TTL or its timestamp is damaged (no TTL: never)."""
        ### BEGIN SOLUTION
        if self.ttl is None:
            return False
        age = entry_age(entry, self.clock())
        return age is None or age > self.ttl
        ### END SOLUTION

    def invalidate(self, key: str) -> bool:
        """Delete `key`'s entry; True if there was one."""
        path = self.path_for(key)  # refuses keys that would point outside the cache
        ### BEGIN SOLUTION
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True
        ### END SOLUTION

    def invalidate_older_than(self, seconds: float) -> int:
        """Delete every entry older than `seconds` or with a damaged timestamp; return how many."""
        seconds = seconds_setting("seconds", seconds)
        ### BEGIN SOLUTION
        removed, now = 0, self.clock()
        for path in self.directory.glob("*.json"):
            age = entry_age(read_json_entry(path) or {}, now)
            if age is None or age > seconds:
                path.unlink(missing_ok=True)
                removed += 1
        self.remove_orphans()
        return removed
        ### END SOLUTION

    def clear(self) -> int:
        """Delete every entry of this namespace (and old orphan temp files); return how many."""
        ### BEGIN SOLUTION
        removed = 0
        for path in self.directory.glob("*.json"):
            path.unlink(missing_ok=True)
            removed += 1
        self.remove_orphans()
        return removed
        ### END SOLUTION


# %%
ex1.check_expiry(ExpiringCache, entry_age)

# %%
clock = wbc.ManualClock()
ttl_cache = ExpiringCache(wbc.fresh_cache_dir("ex1/ttl_demo"), ttl=60, clock=clock)
ttl_cache.put("capital-france", {"answer": "Paris"})
clock.advance(59)
print("after 59 s:", ttl_cache.get("capital-france"))
clock.advance(2)
print("after 61 s:", ttl_cache.get("capital-france"))
for created in [float("nan"), float("inf"), 1e30, "yesterday"]:
    write_json_atomic(
        ttl_cache.path_for("damaged"), {"key": "damaged", "created": created, "value": "?"}
    )
    print(f"created={created!r:<12} served? {ttl_cache.get('damaged') is not None}")
try:
    ExpiringCache(ttl_cache.directory.parent, ttl=float("nan"))
except ValueError as exc:
    print("ttl=nan refused:", exc)
v2 = ExpiringCache(ttl_cache.directory.parent, namespace="v2", clock=clock)
print("v2 sees v1 entries?", v2.get("capital-france") is not None)

# %% nbgrader={"grade": true, "grade_id": "test_expiry", "points": 2}
import json as _json
import tempfile as _tempfile
from pathlib import Path as _Path

with _tempfile.TemporaryDirectory() as tmp_dir:
    now = [1_000_000.0]
    cache = ExpiringCache(tmp_dir, ttl=10, clock=lambda: now[0])
    assert cache.is_stale({"key": "k", "created": now[0] - 11, "value": "v"}), (
        "older than the TTL: stale"
    )
    assert not cache.is_stale({"key": "k", "created": now[0] - 5, "value": "v"})
    cache.path_for("k").write_text(_json.dumps({"key": "k", "created": now[0], "value": "v"}))
    assert cache.invalidate("k") is True and not cache.path_for("k").exists()
    ### BEGIN HIDDEN TESTS
    import os as _os
    import time as _time
    from unittest import mock as _mock

    def _reference_read(path):
        try:
            data = _json.loads(_Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return None
        return data if isinstance(data, dict) else None

    with _mock.patch.dict(
        globals(), {"read_json_entry": _reference_read}
    ):  # Task 2 cannot cost points here

        def _entry(c, key, created, value="v"):
            c.path_for(key).write_text(
                _json.dumps({"key": key, "created": created, "value": value})
            )

        assert cache.invalidate("k") is False
        assert not cache.is_stale({"created": now[0] - 10}), (
            "exactly ttl seconds old is still fresh"
        )
        for bad in (float("nan"), float("inf"), float("-inf"), 1e30, now[0] + 5, "0", None, True):
            assert entry_age({"created": bad}, now[0]) is None, f"created={bad!r} must give no age"
            assert cache.is_stale({"created": bad, "value": 1}), f"created={bad!r} must be stale"
        assert entry_age({}, now[0]) is None and entry_age({"created": now[0] - 3}, now[0]) == 3
        forever = ExpiringCache(tmp_dir, clock=lambda: now[0])
        assert not forever.is_stale({"created": now[0] - 10**9}), "ttl=None never expires"
        for bad_ttl in (float("nan"), float("inf"), -1):
            try:
                ExpiringCache(tmp_dir, ttl=bad_ttl)
            except ValueError:
                pass
            else:
                raise AssertionError(f"ttl={bad_ttl!r} must be refused")
        for name in ("a", "b", "c"):
            _entry(cache, name, now[0] - 100)
        _entry(cache, "d", now[0])
        _entry(cache, "nan", float("nan"))
        _entry(cache, "future", 1e30)
        cache.path_for("broken").write_text("{")
        assert cache.invalidate_older_than(50) == 6  # a, b, c, nan, future and the broken file
        assert sorted(p.stem for p in cache.directory.glob("*.json")) == ["d"]
        other = ExpiringCache(tmp_dir, namespace="v2", clock=lambda: now[0])
        _entry(other, "d", now[0], "new")
        orphan = cache.directory / ".d.json.x1.tmp"
        orphan.write_text('{"half')
        old = _time.time() - 3600
        _os.utime(orphan, (old, old))
        young = cache.directory / ".d.json.x2.tmp"
        young.write_text('{"half')
        assert cache.clear() == 1 and not cache.path_for("d").exists()
        assert not orphan.exists(), (
            "clear() must remove old orphan .tmp files (self.remove_orphans())"
        )
        assert young.exists(), "a young .tmp file may belong to a live writer"
        assert other.path_for("d").exists(), "clear() only clears its own namespace"
        orphan.write_text("x")
        _os.utime(orphan, (old, old))
        cache.invalidate_older_than(0)
        assert not orphan.exists(), "invalidate_older_than must remove old orphan .tmp files too"
        try:
            cache.invalidate("../v2/d")
        except ValueError:
            pass
        assert other.path_for("d").exists(), "a key must never delete outside the cache"
    ### END HIDDEN TESTS

# %% [markdown]
# ## Task 5 — a DSPy module that checks the cache first
#
# Now wrap a real DSPy module. `CachedPredict` holds a `dspy.Predict` and a cache (anything with
# `get(key)` and `put(key, value)`, such as your `ExpiringCache`). The given code does three
# things for you; read it:
#
# * `cache_key(inputs)` calls your `make_cache_key` with the model and settings of the LM that
#   will answer, and with `describe_program(...)`: the instructions, every field with its **type
#   and description**, the adapter and any few-shot demos. A `question -> answer: int` predictor
#   therefore never gets the text a `question -> answer: str` predictor cached.
# * `encode(prediction)` turns the output fields into JSON with pydantic, the way DSPy itself
#   parses them: a `datetime.date` becomes `"1969-07-20"`. It raises `TypeError` or `ValueError`
#   for a value it cannot encode.
# * `decode(stored)` turns a stored entry back into a `dspy.Prediction` **with the fields' own
#   types** (the date comes back as a `date`, not a string), or returns `None` when the entry no
#   longer fits the signature.
#
# You write `hit_rate` and `forward`. What is graded:
#
# * `hit_rate` is `hits / (hits + misses)`, and `0.0` before the first call.
# * `forward(**inputs)` looks up `self.cache_key(inputs)`. When the cache has a value and
#   `self.decode(value)` is not `None`, that is a **hit**: count it and return the decoded
#   prediction **without calling the LM**.
# * Otherwise it is a **miss**: count it, call `self.predict(**inputs)`, store
#   `self.encode(prediction)` with `self.cache.put`, and return the prediction.
# * **Never lose an answer you paid for.** If encoding or storing fails (`OSError`: a read-only
#   folder or a full disk; `TypeError`/`ValueError`: a value that cannot be stored), warn with
#   `warnings.warn(...)` saying the answer was not cached, and return the prediction anyway.
#
# Stuck? `ex1.hint("cached_module")`.
#
# The inner `dspy.Predict` is built with `cache=False`, which switches DSPy's own cache off for
# it, so each miss really reaches the model. The LM is looked up when the call is made, so
# `with dspy.context(lm=other_lm):` is respected, and it also changes the key. Task 5 is graded
# with the test's own cache and key, so Tasks 1–4 do not affect its score.


# %% nbgrader={"solution": true, "grade_id": "cached_module"}
@functools.lru_cache(maxsize=256)
def _adapter(annotation: Any) -> TypeAdapter:
    return TypeAdapter(annotation)  # building one costs ~100 µs: once per type


@functools.lru_cache(maxsize=128)
def describe_signature(signature: type[dspy.Signature]) -> str:
    """A signature's instructions and fields (role, type, description, prefix) as JSON text."""
    fields = []
    for name, field in signature.fields.items():
        extra = field.json_schema_extra or {}
        try:
            schema = _adapter(field.annotation).json_schema()  # the structure of a nested type
        except Exception:  # a type pydantic cannot describe: its name has to do
            schema = None
        fields.append(
            {
                "name": name,
                "role": extra.get("__dspy_field_type"),
                "type": repr(field.annotation),
                "schema": schema,
                "desc": extra.get("desc"),
                "prefix": extra.get("prefix"),
            }
        )
    return json.dumps(
        {"instructions": signature.instructions, "fields": fields}, sort_keys=True, default=str
    )


def describe_program(predict: dspy.Predict) -> str:
    """All but the inputs and the LM that shapes `predict`'s prompt: the key's `signature`."""
    adapter = dspy.settings.adapter
    demos = [demo.toDict() if hasattr(demo, "toDict") else dict(demo) for demo in predict.demos]
    return json.dumps(
        {
            "signature": describe_signature(predict.signature),
            "demos": demos,
            "adapter": type(adapter).__name__ if adapter else "ChatAdapter",
        },
        sort_keys=True,
        default=str,
    )


class CachedPredict(dspy.Module):
    """`dspy.Predict` behind a cache: repeated calls are answered without the LM."""

    def __init__(
        self, signature: str | type[dspy.Signature] = "question -> answer", *, cache: Any
    ) -> None:
        super().__init__()
        self.predict = dspy.Predict(signature, cache=False)  # DSPy's own cache off: we measure ours
        self.cache = cache
        self.hits = 0
        self.misses = 0

    def _lm(self) -> dspy.LM:
        lm = self.predict.lm or dspy.settings.lm
        if lm is None:
            raise wb.BackendError(
                "No LM is configured: run `lm = wb.setup()` first, or use dspy.context(lm=...)."
            )
        return lm

    def cache_key(self, inputs: dict) -> str:
        """The key of a call with `inputs`: everything that could change its answer or its type."""
        lm = self._lm()
        return make_cache_key(
            inputs, signature=describe_program(self.predict), model=lm.model, lm_settings=lm.kwargs
        )

    def encode(self, prediction: dspy.Prediction) -> dict:
        """The output fields as JSON-ready values; TypeError/ValueError if one cannot be stored."""
        encoded = {}
        for name, field in self.predict.signature.output_fields.items():
            try:
                encoded[name] = _adapter(field.annotation).dump_python(
                    prediction[name], mode="json"
                )
            except Exception as exc:
                raise TypeError(f"output field {name!r} cannot be stored as JSON: {exc}") from exc
        return encoded

    def decode(self, stored: Any) -> dspy.Prediction | None:
        """A prediction with the output fields' own types, or None if `stored` does not fit them."""
        fields = self.predict.signature.output_fields
        if not isinstance(stored, dict) or set(stored) != set(fields):
            return None
        try:
            return dspy.Prediction(
                **{
                    name: _adapter(field.annotation).validate_python(stored[name])
                    for name, field in fields.items()
                }
            )
        except Exception:  # stored by an older signature, or edited by hand: a miss
            return None

    @property
    def hit_rate(self) -> float:
        """Hits / calls so far; 0.0 before the first call."""
        ### BEGIN SOLUTION
        calls = self.hits + self.misses
        return self.hits / calls if calls else 0.0
        ### END SOLUTION

    def forward(self, **inputs: Any) -> dspy.Prediction:
        """Answer from the cache if possible, else from the LM (and remember the answer)."""
        ### BEGIN SOLUTION
        key = self.cache_key(inputs)
        stored = self.cache.get(key)
        cached = self.decode(stored) if stored is not None else None
        if cached is not None:
            self.hits += 1
            return cached
        self.misses += 1
        prediction = self.predict(**inputs)
        try:
            self.cache.put(key, self.encode(prediction))
        except (OSError, TypeError, ValueError) as exc:
            warnings.warn(
                f"the answer was not cached ({type(exc).__name__}: {exc}); it is returned "
                "all the same",
                stacklevel=2,
            )
        return prediction
        ### END SOLUTION


# %%
ex1.check_cached_module(CachedPredict)

# %% nbgrader={"grade": true, "grade_id": "test_cached_module", "points": 3}
# Graded with the test's own cache and key, so Tasks 1-4 cannot cost points here.
import hashlib as _hashlib

import dspy as _dspy

from dspy_workbook import sim_lm as _sim_lm


class _DictCache:
    def __init__(self):
        self.data = {}

    def get(self, key):
        return self.data.get(key)

    def put(self, key, value):
        self.data[key] = value


class _Graded(CachedPredict):
    def cache_key(self, inputs):
        lm = self._lm()
        text = repr(
            (
                sorted(inputs.items()),
                describe_program(self.predict),
                lm.model,
                sorted(lm.kwargs.items()),
            )
        )
        return _hashlib.sha256(text.encode()).hexdigest()


sim = _sim_lm(latency=0.01)
with _dspy.context(lm=sim):
    program = _Graded(cache=_DictCache())
    assert program.hit_rate == 0.0, "hit_rate before any call must be 0.0"
    first = program(question="What is DSPy?")
    program(question="How do I optimize?")
    again = program(question="What is DSPy?")
    assert (program.hits, program.misses) == (1, 2)
    assert again.answer == first.answer and len(sim.history) == 2, "a hit must not call the LM"
### BEGIN HIDDEN TESTS
import datetime as _datetime
import warnings as _warnings

assert abs(program.hit_rate - 1 / 3) < 1e-9 and sim.engine.stats.calls == 2
with _dspy.context(lm=sim):
    reloaded = _Graded(cache=program.cache)
    assert reloaded(question="How do I optimize?").answer.endswith("How do I optimize?")
    assert (reloaded.hits, reloaded.misses, len(sim.history)) == (1, 0, 2), "a shared cache answers"
hot = _sim_lm(latency=0.01, temperature=0.9)
with _dspy.context(lm=hot):
    program(question="What is DSPy?")
assert (program.misses, len(hot.history)) == (3, 1), (
    "the key from cache_key decides: another temperature misses"
)


class _When(_dspy.Signature):
    """Answer with a date."""

    question: str = _dspy.InputField()
    answer: _datetime.date = _dspy.OutputField()


dated = _sim_lm(latency=0.01, answers={"moon": "1969-07-20"})
with _dspy.context(lm=dated):
    when = _Graded(_When, cache=_DictCache())
    miss = when(question="When did people land on the moon?")
    hit = when(question="When did people land on the moon?")
    assert (when.hits, when.misses, len(dated.history)) == (1, 1, 1)
    assert hit.answer == miss.answer == _datetime.date(1969, 7, 20), (
        "a hit returns the field's own type (decode)"
    )
    when.cache.data[when.cache_key({"question": "When did people land on the moon?"})] = {
        "answer": "soon"
    }
    when(question="When did people land on the moon?")
    assert (when.hits, when.misses, len(dated.history)) == (1, 2, 2), (
        "an entry decode() rejects is a miss"
    )


class _Broken(_DictCache):
    def __init__(self, error):
        super().__init__()
        self.error = error

    def put(self, key, value):
        raise self.error


for error in (
    OSError(28, "No space left on device"),
    PermissionError(13, "Read-only folder"),
    TypeError("no JSON"),
):
    with _dspy.context(lm=sim), _warnings.catch_warnings(record=True) as caught:
        _warnings.simplefilter("always")
        broken = _Graded(cache=_Broken(error))
        answer = broken(question="What is a full disk?")
    assert answer.answer.endswith("What is a full disk?"), (
        f"{type(error).__name__} on put lost the answer"
    )
    assert caught, f"{type(error).__name__} on put must be reported with warnings.warn"
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
program = CachedPredict(
    cache=ExpiringCache(wbc.fresh_cache_dir("ex1/three_queries"), ttl=24 * 3600)
)
dspy.Predict("question -> answer", cache=False)(
    question="Warm-up: say hello."
)  # load the model before timing

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
# about a third of a second, and answer lengths vary, so the difference here is small and noisy.
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
# ### A cache that fails must not cost the answer
#
# A cache folder can be read-only, or the disk full. Here the folder is replaced by a file, so
# every write fails with an `OSError`: the module warns and still answers.

# %%
blocked_dir = wbc.fresh_cache_dir("ex1/blocked")
unwritable = ExpiringCache(blocked_dir)
unwritable.directory.rmdir()
unwritable.directory.write_text("not a folder")  # every write into it now fails
blocked = CachedPredict(cache=unwritable)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    reply = blocked(question="What is DSPy?")
print(
    "answered:", bool(reply.answer), "| warnings:", [str(w.message).split(" (")[0] for w in caught]
)

# %% [markdown]
# ## A realistic stream: latency per call and hit rate over time
#
# Real traffic is skewed: a handful of questions make up most of it. `wbc.zipf_stream` draws 30
# questions from a list of 12, with the k-th most popular question drawn with weight 1/k. The
# draw is seeded, so the stream is the same on every run. Every distinct question is a miss the
# first time it is asked, and a hit after that. A progress bar shows the 30 calls as they run.

# %% tags=["nbval-ignore-output"]
stream = wbc.zipf_stream(n=30, seed=0)
streamed = CachedPredict(cache=ExpiringCache(wbc.fresh_cache_dir("ex1/stream")))
records = wbc.run_stream(streamed, stream)

# %%
print(f"{len(stream)} calls, {len(set(stream))} distinct questions")
print(f"Cache hits: {streamed.hits}, misses: {streamed.misses}, hit rate: {streamed.hit_rate:.1%}")

# %% tags=["nbval-ignore-output"]
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
# share of repeats in the traffic. That share is the best *any* exact-match cache can do on this
# stream.
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
# key must name everything the prompt depends on, which is why `describe_program` lists the
# fields' types, the adapter and the demos. DSPy's key sees the actual prompt, so it notices
# anything new that shapes it without being told.

# %% tags=["nbval-ignore-output"]
hit_question = {"question": "What is DSPy?"}
ours = CachedPredict(cache=ExpiringCache(wbc.fresh_cache_dir("ex1/latency")))
ours(**hit_question)
wbc.use_dspy_disk_cache("ex1/dspy_latency")
theirs = dspy.Predict("question -> answer")
theirs(**hit_question)
samples = {
    "our ExpiringCache hit": wbc.time_calls(lambda: ours(**hit_question), 100, desc="ours"),
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
# ## Going further (optional, 2 bonus points) — matching *similar* questions, safely
#
# This part is the seed's advanced challenge. It is extra credit: skip it and your core grade is
# complete.
#
# "What is DSPy?", "what is dspy" and "  What is DSPy ?? " are the same question, but an
# exact-match key sees three different strings. A **normalised** key (case folded, punctuation
# dropped, whitespace collapsed) catches these for free. Going further, to "close enough"
# questions, takes a **similarity measure** and a **threshold** — and this is where caching gets
# dangerous, because a wrong hit is far worse than a miss: it serves a confident, wrong answer.
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
# Write a safer version. What is graded (at the default threshold 0.9):
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

# %% [markdown]
# The last line shows what the safety costs. "What's" normalises to the two words "what s", so
# a harmless rephrasing is a miss. That is the right way to fail. Before you lower the threshold,
# look at what else would start to match. Embeddings (semantic similarity) catch more rephrasings,
# but they also happily match France with Spain. Production systems that serve "similar" answers
# add a second check, such as the same named entities, or a small model that asks "are these the
# same question?".

# %% nbgrader={"grade": true, "grade_id": "test_similar_cache", "points": 2}
assert normalize_question("  What is   DSPy?! ") == "what is dspy"
sc = SimilarQuestionCache()
sc.put("What is the capital of France?", "Paris")
assert sc.get("what is the capital of france") == "Paris", "case and punctuation must not matter"
assert sc.get("What is the capital of Spain?") is None, (
    "a different question must not be answered from the cache"
)
### BEGIN HIDDEN TESTS
# Types first: an object whose `==` always answers True must not pass the comparisons below.
assert type(normalize_question("What is DSPy?")) is str
assert type(question_similarity("a b", "a b")) in (int, float)
assert sc.get("\tWHAT   is the CAPITAL of France ??") == "Paris"
assert SimilarQuestionCache().get("anything") is None
assert normalize_question("Isn't 2+2 = 4?") == "is not 2 + 2 = 4"
assert normalize_question("Какая СТОЛИЦА Франции?") == "какая столица франции"
for a, b in [
    ("Convert 100 USD to EUR", "Convert 100 EUR to USD"),
    ("dog bites man", "man bites dog"),
    ("What is 2+2?", "What is 2-2?"),
    ("What is 2+2?", "What is 2+3?"),
    (
        "Is the service available on Sundays in the city centre?",
        "Is the service not available on Sundays in the city centre?",
    ),
    ("Какая столица Франции?", "Какая столица Испании?"),
    ("東京の人口は?", "大阪の天気は?"),
    ("???", "!!!"),
    ("", ""),
]:
    one = SimilarQuestionCache()
    one.put(a, "answer for a")
    assert one.get(b) is None, f"{b!r} must not get the answer to {a!r}"
    assert question_similarity(a, b) < 0.9
assert question_similarity("", "") == 0.0 and question_similarity("What?", "") == 0.0
for a, b in [
    ("What is 2+2?", "What is 2-2?"),
    ("What is 2+2?", "What is 2+3?"),
    (
        "Is the service available on Sundays in the city centre?",
        "Is the service not available on Sundays in the city centre?",
    ),
    ("Is it safe today?", "Isn't it safe today?"),
    ("Convert 100 USD", "Convert 200 USD"),
]:
    assert question_similarity(a, b) == 0.0, (
        f"numbers, signs and negations must agree: {a!r} / {b!r}"
    )
    lenient = SimilarQuestionCache(threshold=0.3)
    lenient.put(a, "answer for a")
    assert lenient.get(b) is None, f"even at threshold 0.3, {b!r} must not get the answer to {a!r}"
assert question_similarity("Is 2+2 4?", "is 2 + 2 4") == 1.0
same_script = SimilarQuestionCache()
same_script.put("Какая столица Франции?", "Париж")
assert same_script.get("какая столица франции") == "Париж", "non-Latin questions normalise too"
loose = SimilarQuestionCache(threshold=0.3)
loose.put("red green blue", "colours")
loose.put("red green blue yellow", "four colours")
assert loose.get("red green blue yellow!") == "four colours", "the most similar entry wins"
assert loose.get("Red, green, blue.") == "colours"
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

# %% [markdown]
# ## Check everything, then submit
#
# `ex1.check_all()` runs every self-check again on what your notebook defines now, and shows the
# points at stake, core and optional apart.

# %%
ex1.check_all()

# %% [markdown]
# **How to submit.** Save the notebook (Ctrl-S). Then, in JupyterLab, run *Kernel → Restart
# Kernel and Run All Cells* once: a notebook is graded top to bottom in a fresh kernel, and
# Run All stops at the first cell that raises. If your course uses nbgrader's **Assignment List**,
# press *Validate* on this notebook and then *Submit*; otherwise hand in the `.ipynb` file the way
# your instructor asked. Do not edit or delete the locked test cells: grading replaces them.
#
# ## Summary
#
# You used DSPy's built-in cache and history, and saw where they stop (no TTL, sync/async keys,
# endpoint-blind keys). You built a cache whose key covers everything that changes the answer and
# its type, whose writes are atomic, and for which a damaged file or timestamp costs one miss
# instead of a crash or a stale answer forever. It cannot be tricked into touching files outside
# its folder, it cleans up after killed writers, and a cache that cannot be written never loses an
# answer. `bench/bench_cache.py` repeats the latency comparison with 300 hits per row.
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
