"""Exercise 1 graded like an instructor would: wrong submissions must lose the points of their task.

Each wrong submission is the master's solution with one part replaced by a plausible mistake. The
task's graded cell (visible and hidden tests) must fail on it, and every other graded cell must
still pass: a mistake costs the points of its own task only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import dspy
import jupytext
import pytest
from answer_key import MASTERS, load_solutions  # noqa: E402 (tools/ is on sys.path: see conftest)

SOLUTIONS = ("cache_key", "atomic_io", "disk_cache", "expiry", "cached_module", "similar_cache")


def graded_cells(master: Path = MASTERS / "01_caching.py") -> dict[str, str]:
    cells = jupytext.read(master, fmt="py:percent").cells
    return {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }


def passes(source: str, notebook: dict[str, Any], replacements: dict[str, Any]) -> bool:
    """Whether a graded cell passes (nbgrader: full points) with `replacements` in the notebook.

    `notebook` is the dict the solution cells ran in (their functions' globals), so a replaced
    function is also what the other solution code calls, as in a real kernel. It is restored after.
    """
    with mock.patch.dict(notebook, replacements):
        try:
            exec(compile(source, "<graded cell>", "exec", dont_inherit=True), notebook)
        except Exception:
            return False
    return True


def notebook_of(namespace: Any) -> dict[str, Any]:
    """The globals the answer key's solution cells were executed in."""
    return namespace.make_cache_key.__globals__


# -- the wrong submissions: (the task they break, replacements built from the solved namespace) --
def _md5_of_inputs(ns: dict) -> dict:
    def make_cache_key(inputs, *, signature, model, lm_settings=None):
        return hashlib.md5(json.dumps(inputs, sort_keys=True).encode()).hexdigest()

    return {"make_cache_key": make_cache_key}


def _default_str_key(ns: dict) -> dict:
    def make_cache_key(inputs, *, signature, model, lm_settings=None):
        payload = {
            "inputs": inputs,
            "signature": signature,
            "model": model,
            "lm_settings": lm_settings or {},
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    return {"make_cache_key": make_cache_key}


def _key_without_settings(ns: dict) -> dict:
    def make_cache_key(inputs, *, signature, model, lm_settings=None):
        payload = {"inputs": ns["tag_types"](inputs), "signature": signature, "model": model}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    return {"make_cache_key": make_cache_key}


def _read_without_recursion_guard(ns: dict) -> dict:
    def read_json_entry(path):
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    return {"read_json_entry": read_json_entry}


def _temp_file_in_tmp(ns: dict) -> dict:
    def write_json_atomic(path, data):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".tmp")  # another folder, maybe another file system
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    return {"write_json_atomic": write_json_atomic}


def _temp_file_left_on_failure(ns: dict) -> dict:
    def write_json_atomic(path, data):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)

    return {"write_json_atomic": write_json_atomic}


def _get_ignoring_is_stale(ns: dict) -> dict:
    read = ns["read_json_entry"]

    class DiskCache(ns["DiskCache"]):
        def get(self, key):
            entry = read(self.path_for(key))
            if entry is None or "value" not in entry:
                self.misses += 1
                return None
            self.hits += 1
            return entry["value"]

    return {"DiskCache": DiskCache}


def _put_with_wall_clock(ns: dict) -> dict:
    write = ns["write_json_atomic"]

    class DiskCache(ns["DiskCache"]):
        def put(self, key, value):
            write(self.path_for(key), {"key": key, "created": time.time(), "value": value})

    return {"DiskCache": DiskCache}


def _naive_age(ns: dict) -> dict:
    def entry_age(entry, now):
        created = entry.get("created")
        return now - created if isinstance(created, int | float) else None

    return {"entry_age": entry_age}


def _clear_leaving_orphans(ns: dict) -> dict:
    class ExpiringCache(ns["ExpiringCache"]):
        def clear(self):
            removed = 0
            for path in self.directory.glob("*.json"):
                path.unlink(missing_ok=True)
                removed += 1
            return removed

    return {"ExpiringCache": ExpiringCache}


def _expiry_at_exactly_ttl(ns: dict) -> dict:
    age_of = ns["entry_age"]

    class ExpiringCache(ns["ExpiringCache"]):
        def is_stale(self, entry):
            if self.ttl is None:
                return False
            age = age_of(entry, self.clock())
            return age is None or age >= self.ttl

    return {"ExpiringCache": ExpiringCache}


def _hit_rate_divides_by_zero(ns: dict) -> dict:
    class CachedPredict(ns["CachedPredict"]):
        @property
        def hit_rate(self):
            return self.hits / (self.hits + self.misses)

    return {"CachedPredict": CachedPredict}


def _untyped_hits(ns: dict) -> dict:
    class CachedPredict(ns["CachedPredict"]):
        def forward(self, **inputs):
            key = self.cache_key(inputs)
            stored = self.cache.get(key)
            if stored is not None:
                self.hits += 1
                return dspy.Prediction(**stored)
            self.misses += 1
            prediction = self.predict(**inputs)
            self.cache.put(key, self.encode(prediction))
            return prediction

    return {"CachedPredict": CachedPredict}


def _loses_answer_when_put_fails(ns: dict) -> dict:
    class CachedPredict(ns["CachedPredict"]):
        def forward(self, **inputs):
            key = self.cache_key(inputs)
            cached = self.decode(self.cache.get(key))
            if cached is not None:
                self.hits += 1
                return cached
            self.misses += 1
            prediction = self.predict(**inputs)
            self.cache.put(key, self.encode(prediction))
            return prediction

    return {"CachedPredict": CachedPredict}


def _swallows_put_errors_silently(ns: dict) -> dict:
    class CachedPredict(ns["CachedPredict"]):
        def forward(self, **inputs):
            key = self.cache_key(inputs)
            cached = self.decode(self.cache.get(key))
            if cached is not None:
                self.hits += 1
                return cached
            self.misses += 1
            prediction = self.predict(**inputs)
            try:
                self.cache.put(key, self.encode(prediction))
            except Exception:
                pass
            return prediction

    return {"CachedPredict": CachedPredict}


def _naive_similarity(ns: dict) -> dict:
    def normalize_question(text):
        return " ".join(re.findall(r"[a-z0-9]+", text.lower()))

    def question_similarity(a, b):
        words_a, words_b = set(normalize_question(a).split()), set(normalize_question(b).split())
        if not words_a and not words_b:
            return 1.0
        return len(words_a & words_b) / len(words_a | words_b)

    return {"normalize_question": normalize_question, "question_similarity": question_similarity}


def _unicode_but_order_blind(ns: dict) -> dict:
    normalize = ns["normalize_question"]

    def question_similarity(a, b):
        words_a, words_b = set(normalize(a).split()), set(normalize(b).split())
        if not words_a or not words_b:
            return 0.0
        return len(words_a & words_b) / len(words_a | words_b)

    return {"question_similarity": question_similarity}


def _no_negation_guard(ns: dict) -> dict:
    normalize = ns["normalize_question"]

    def question_similarity(a, b):
        ta, tb = normalize(a).split(), normalize(b).split()
        if not ta or not tb:
            return 0.0
        fa = set(ta) | {f"{x} {y}" for x, y in zip(ta, ta[1:], strict=False)}
        fb = set(tb) | {f"{x} {y}" for x, y in zip(tb, tb[1:], strict=False)}
        return len(fa & fb) / len(fa | fb)

    return {"question_similarity": question_similarity}


WRONG: dict[str, tuple[str, Callable[[dict], dict]]] = {
    "key: md5 of the inputs only": ("test_cache_key", _md5_of_inputs),
    "key: json default=str (list = tuple, Decimal = str)": ("test_cache_key", _default_str_key),
    "key: settings left out": ("test_cache_key", _key_without_settings),
    "read: no RecursionError guard": ("test_atomic_io", _read_without_recursion_guard),
    "write: temp file in /tmp": ("test_atomic_io", _temp_file_in_tmp),
    "write: temp file left when the write fails": ("test_atomic_io", _temp_file_left_on_failure),
    "get: ignores is_stale": ("test_disk_cache", _get_ignoring_is_stale),
    "put: time.time() instead of self.clock()": ("test_disk_cache", _put_with_wall_clock),
    "age: NaN, infinity and the future accepted": ("test_expiry", _naive_age),
    "clear: orphan .tmp files kept": ("test_expiry", _clear_leaving_orphans),
    "expiry: stale at exactly the TTL": ("test_expiry", _expiry_at_exactly_ttl),
    "hit_rate: ZeroDivisionError": ("test_cached_module", _hit_rate_divides_by_zero),
    "forward: hits lose the field types": ("test_cached_module", _untyped_hits),
    "forward: a failing put loses the answer": ("test_cached_module", _loses_answer_when_put_fails),
    "forward: a failing put is silent": ("test_cached_module", _swallows_put_errors_silently),
    "similar: [a-z0-9]+ Jaccard, empty = 1.0": ("test_similar_cache", _naive_similarity),
    "similar: Unicode, but order-blind": ("test_similar_cache", _unicode_but_order_blind),
    "similar: no number/sign/negation guard": ("test_similar_cache", _no_negation_guard),
}


@pytest.fixture(scope="module")
def solved() -> dict[str, Any]:
    return notebook_of(load_solutions("01_caching", *SOLUTIONS))


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKBOOK_CACHE_DIR", str(tmp_path / "workbook"))


@pytest.mark.parametrize("name", WRONG)
def test_a_wrong_submission_loses_exactly_its_tasks_points(name: str, solved: dict) -> None:
    task, build = WRONG[name]
    verdicts = {
        grade_id: passes(source, solved, build(solved))
        for grade_id, source in graded_cells().items()
    }
    assert verdicts.pop(task) is False, f"{name}: {task} still gives full points"
    assert all(verdicts.values()), (
        f"{name} also cost points in {[g for g, ok in verdicts.items() if not ok]}"
    )


def test_the_solution_passes_every_cell_this_way(solved: dict) -> None:
    assert all(passes(source, solved, {}) for source in graded_cells().values())
