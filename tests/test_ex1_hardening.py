"""Exercise 1's reference cache against hostile input: keys that are paths, symlinks, damaged
entries, writers killed mid-write, outputs that are not JSON, caches that cannot be written, and
questions that look alike but are not. Each class of input has its test here (issue 8).
"""

from __future__ import annotations

import datetime
import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import dspy
import pytest

import dspy_workbook as wb
from dspy_workbook import caching as wbc
from tools.answer_key import ROOT, load_solutions  # noqa: E402

KEY = load_solutions("01_caching", "cache_key", "disk_cache", "cached_module", "similar_cache")
HEX = "ab" * 32


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKBOOK_CACHE_DIR", str(tmp_path / "workbook"))


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- keys never address a path outside the cache ----------------------------------------------
@pytest.mark.parametrize(
    "key",
    ["../../escaped", "/tmp/x", "..", "a/b", "a.json", "", "k\x00", "x" * 129, "ключ", 42, None],
)
def test_a_key_that_is_not_a_plain_file_name_is_refused(tmp_path: Path, key: Any) -> None:
    cache = KEY.DiskCache(tmp_path / "root" / "cache")
    before = _files(tmp_path)
    for method, args in (("put", (key, "v")), ("get", (key,)), ("invalidate", (key,))):
        with pytest.raises(ValueError, match="file name"):
            getattr(cache, method)(*args)
    assert _files(tmp_path) == before, "nothing may be written or deleted"


def test_invalidate_cannot_delete_outside_the_cache(tmp_path: Path) -> None:
    victim = tmp_path / "root" / "victim.json"
    victim.parent.mkdir(parents=True)
    victim.write_text("{}")
    cache = KEY.DiskCache(tmp_path / "root" / "cache")
    for key in ("../../victim", "../victim", str(victim.with_suffix(""))):
        with pytest.raises(ValueError):
            cache.invalidate(key)
    assert victim.exists()
    cache.put(HEX, "fine")
    assert cache.get(HEX) == "fine"
    cache.invalidate(HEX)
    assert cache.get(HEX) is None and not cache.path_for(HEX).exists()


@pytest.mark.parametrize("link_at", ["ex1", "ex1/demo"])
def test_fresh_cache_dir_never_empties_through_a_symlink(tmp_path: Path, link_at: str) -> None:
    precious = tmp_path / "precious"
    (precious / "demo").mkdir(parents=True)
    (precious / "keep.txt").write_text("mine")
    (precious / "demo" / "keep.txt").write_text("mine too")
    root = tmp_path / "workbook"
    link = root / link_at
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(
        precious / "demo" if link_at.endswith("demo") else precious, target_is_directory=True
    )
    with pytest.raises(ValueError, match="symbolic link"):
        wbc.fresh_cache_dir("ex1/demo")
    assert (precious / "keep.txt").read_text() == "mine" and (
        precious / "demo" / "keep.txt"
    ).exists()


# -- damaged or absurd entries are misses; absurd settings are refused -----------------------------
@pytest.mark.parametrize(
    "created", [float("nan"), float("inf"), float("-inf"), 1e30, "0", None, True, [1]]
)
def test_an_entry_with_a_damaged_timestamp_is_a_miss_and_is_cleaned_up(
    tmp_path: Path, created: Any
) -> None:
    clock = wbc.ManualClock()
    cache = KEY.DiskCache(tmp_path, ttl=3600, clock=clock)
    wbc.write_json_atomic(
        cache.path_for(HEX), {"key": HEX, "created": created, "value": "stale forever?"}
    )
    assert cache.get(HEX) is None
    assert cache.invalidate_older_than(0) == 1 and not cache.path_for(HEX).exists()


def test_a_timestamp_written_as_nan_text_by_json_is_a_miss(tmp_path: Path) -> None:
    cache = KEY.DiskCache(tmp_path, ttl=10, clock=wbc.ManualClock())
    for text in ("NaN", "Infinity", "-Infinity", "1e400"):
        cache.path_for(HEX).write_text(f'{{"key": "{HEX}", "created": {text}, "value": 1}}')
        assert cache.get(HEX) is None, text


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_a_miss_not_a_recursion_error(tmp_path: Path, depth: int) -> None:
    cache = KEY.DiskCache(tmp_path)
    cache.path_for(HEX).write_text("[" * depth + "]" * depth)
    assert cache.get(HEX) is None
    cache.path_for(HEX).write_text('{"value": ' * depth)
    assert cache.get(HEX) is None


@pytest.mark.parametrize("ttl", [float("nan"), float("inf"), -1, "60", True])
def test_nonsensical_ttl_is_refused_clearly(tmp_path: Path, ttl: Any) -> None:
    with pytest.raises(ValueError, match="finite number of seconds"):
        KEY.DiskCache(tmp_path, ttl=ttl)


def test_nonsensical_clean_up_age_is_refused(tmp_path: Path) -> None:
    cache = KEY.DiskCache(tmp_path)
    cache.put(HEX, 1)
    for seconds in (float("nan"), -5):
        with pytest.raises(ValueError, match="seconds"):
            cache.invalidate_older_than(seconds)
    assert cache.get(HEX) == 1


# -- writers killed mid-write ----------------------------------------------------------------------
WRITER = """
import os, time
from dspy_workbook.caching import write_json_atomic
os.replace = lambda *args: time.sleep(120)  # stop between the temp file and the swap
print("writing", flush=True)
write_json_atomic({target!r}, {{"key": "k", "created": 0, "value": "x" * 100_000}})
"""


def _kill_a_writer_mid_write(folder: Path, name: str) -> Path:
    """Start a real writer, SIGKILL it once its temp file exists; return that orphan."""
    script = WRITER.format(target=str(folder / f"{name}.json"))
    writer = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 60
        while not list(folder.glob(f".{name}.json.*.tmp")):
            assert writer.poll() is None, "the writer exited before writing"
            assert time.monotonic() < deadline, "the writer never started its temp file"
            time.sleep(0.05)
        time.sleep(0.2)  # let it finish writing the temp file's content
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    [orphan] = folder.glob(f".{name}.json.*.tmp")
    return orphan


def test_orphans_of_killed_writers_are_removed_by_age(tmp_path: Path) -> None:
    cache = KEY.DiskCache(tmp_path)
    orphans = [_kill_a_writer_mid_write(cache.directory, HEX[: 10 + i]) for i in range(2)]
    assert all(o.stat().st_size > 0 for o in orphans) and cache.clear() == 0
    assert all(o.exists() for o in orphans), "young temp files may belong to live writers: kept"
    long_ago = time.time() - 2 * wbc.ORPHAN_SECONDS
    os.utime(orphans[0], (long_ago, long_ago))
    assert cache.clear() == 0 and not orphans[0].exists() and orphans[1].exists()
    os.utime(orphans[1], (long_ago, long_ago))
    KEY.DiskCache(tmp_path)  # opening the cache sweeps too
    assert not orphans[1].exists()
    assert list(cache.directory.iterdir()) == []


def test_invalidate_older_than_sweeps_orphans(tmp_path: Path) -> None:
    cache = KEY.DiskCache(tmp_path)
    orphan = _kill_a_writer_mid_write(cache.directory, HEX)
    long_ago = time.time() - 2 * wbc.ORPHAN_SECONDS
    os.utime(orphan, (long_ago, long_ago))
    cache.invalidate_older_than(10)
    assert not orphan.exists()


# -- keys cover everything that changes the answer or its type ------------------------------------
def test_a_typed_predictor_is_not_served_the_text_of_an_untyped_one(tmp_path: Path) -> None:
    sim = wb.sim_lm(latency=0.0, answers={"How many": "8"})
    cache = KEY.DiskCache(tmp_path)
    with dspy.context(lm=sim):
        as_text = KEY.CachedPredict("question -> answer", cache=cache)
        as_int = KEY.CachedPredict("question -> answer: int", cache=cache)
        assert as_text(question="How many legs has a spider?").answer == "8"
        number = as_int(question="How many legs has a spider?")
        again = as_int(question="How many legs has a spider?")
    assert number.answer == 8 and again.answer == 8 and isinstance(again.answer, int)
    assert (as_int.hits, as_int.misses) == (1, 1)


@pytest.mark.parametrize(
    "left, right",
    [
        (["a"], ("a",)),
        (1, 1.0),
        (1, True),
        ({1: "x"}, {"1": "x"}),
        (__import__("decimal").Decimal("1.10"), "1.10"),
        (datetime.date(2024, 1, 2), "2024-01-02"),
        ({"a"}, ["a"]),
    ],
)
def test_values_json_would_merge_give_different_keys(left: Any, right: Any) -> None:
    def key(value: Any) -> str:
        return KEY.make_cache_key({"q": value}, signature="s", model="m")

    assert key(left) != key(right)
    assert key(left) == key(left)


def test_a_set_gives_one_key_whatever_its_iteration_order() -> None:
    script = (
        "from tools.answer_key import load_solutions; "
        "k = load_solutions('01_caching', 'cache_key'); "
        "print(k.make_cache_key({'q': {'alpha', 'beta', 'gamma', 'delta'}}, signature='s', "
        "model='m'))"
    )
    runs = [  # started together: each spends seconds importing DSPy
        subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": str(seed), "PYTHONPATH": str(ROOT)},
        )
        for seed in (1, 2, 3)
    ]
    try:
        outputs = [run.communicate(timeout=300) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.wait()
    assert all(run.returncode == 0 for run in runs), [err[-2000:] for _, err in outputs]
    keys = {out for out, _ in outputs}
    assert len(keys) == 1, keys


# -- outputs that are not JSON, and caches that cannot be written, never lose the answer ----------
class _When(dspy.Signature):
    """Answer with a date."""

    question: str = dspy.InputField()
    answer: datetime.date = dspy.OutputField()


def test_a_date_output_is_stored_and_comes_back_as_a_date(tmp_path: Path) -> None:
    sim = wb.sim_lm(latency=0.0, answers={"moon": "1969-07-20"})
    with dspy.context(lm=sim):
        program = KEY.CachedPredict(_When, cache=KEY.DiskCache(tmp_path))
        first = program(question="When did people land on the moon?")
        fresh = KEY.CachedPredict(_When, cache=KEY.DiskCache(tmp_path))
        second = fresh(question="When did people land on the moon?")
    assert first.answer == second.answer == datetime.date(1969, 7, 20)
    assert (fresh.hits, sim.engine.stats.calls) == (1, 1)
    [stored] = tmp_path.rglob("*.json")
    assert json.loads(stored.read_text())["value"] == {"answer": "1969-07-20"}


def _answer_with_warning(program: Any, question: str) -> tuple[Any, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prediction = program(question=question)
    return prediction, [str(w.message) for w in caught]


def test_an_output_that_cannot_be_stored_is_returned_with_a_warning(tmp_path: Path) -> None:
    unstorable = object()
    with dspy.context(lm=wb.sim_lm(latency=0.0)):
        program = KEY.CachedPredict(cache=KEY.DiskCache(tmp_path))
        with mock.patch.object(
            dspy.Predict, "__call__", lambda self, **kw: dspy.Prediction(answer=unstorable)
        ):
            prediction, said = _answer_with_warning(program, "What is DSPy?")
    assert prediction.answer is unstorable
    assert said and "not cached" in said[0] and "answer" in said[0]
    assert not list(tmp_path.rglob("*.json")) and not list(tmp_path.rglob("*.tmp"))


def test_a_full_disk_costs_the_cache_entry_not_the_answer(tmp_path: Path) -> None:
    cache = KEY.DiskCache(tmp_path)
    with (
        dspy.context(lm=wb.sim_lm(latency=0.0)),
        mock.patch("json.dump", side_effect=OSError(28, "No space left on device")),
    ):
        prediction, said = _answer_with_warning(KEY.CachedPredict(cache=cache), "What is DSPy?")
    assert prediction.answer.endswith("What is DSPy?")
    assert said and "No space left on device" in said[0]
    assert list(cache.directory.iterdir()) == [], "the failed write left a file behind"


def test_a_cache_folder_that_cannot_be_written_costs_nothing_but_the_entry(tmp_path: Path) -> None:
    cache = KEY.DiskCache(tmp_path)
    cache.directory.rmdir()
    cache.directory.write_text("a file where the folder was")  # works as root too, unlike chmod
    sim = wb.sim_lm(latency=0.0)
    with dspy.context(lm=sim):
        program = KEY.CachedPredict(cache=cache)
        answers = [_answer_with_warning(program, "What is DSPy?") for _ in range(2)]
    assert all(p.answer.endswith("What is DSPy?") and said for p, said in answers)
    assert (program.hits, program.misses, sim.engine.stats.calls) == (0, 2, 2)


# -- the similarity cache refuses different questions ----------------------------------------------
DIFFERENT = [
    ("Convert 100 USD to EUR", "Convert 100 EUR to USD"),
    ("dog bites man", "man bites dog"),
    ("What is 2+2?", "What is 2-2?"),
    ("What is 2*3?", "What is 2/3?"),
    ("What is 10% of 50?", "What is 10 of 50?"),
    (
        "Is the service available on Sundays in the city centre?",
        "Is the service not available on Sundays in the city centre?",
    ),
    (
        "Is it safe to drink the water in the old town today?",
        "Isn't it safe to drink the water in the old town today?",
    ),
    ("Какая столица Франции?", "Какая столица Испании?"),
    ("Ποια είναι η πρωτεύουσα της Γαλλίας;", "Ποια είναι η πρωτεύουσα της Ισπανίας;"),
    ("東京の人口は?", "大阪の天気は?"),
    ("???", "!!!"),
    ("", ""),
    ("What is the capital of France?", "What is the capital of Spain?"),
]


@pytest.mark.parametrize("stored, asked", DIFFERENT)
def test_similar_cache_refuses_a_different_question(stored: str, asked: str) -> None:
    cache = KEY.SimilarQuestionCache()
    cache.put(stored, "the answer to the stored question")
    assert cache.get(asked) is None
    assert KEY.question_similarity(stored, asked) < cache.threshold


@pytest.mark.parametrize(
    "stored, asked",
    [
        ("What is DSPy?", "  what IS dspy ?? "),
        ("Какая столица Франции?", "какая столица франции"),
        ("Is 2+2 4?", "is 2 + 2 4"),
        ("東京の人口は?", "東京の人口は？"),
    ],
)
def test_similar_cache_still_answers_the_same_question_rephrased(stored: str, asked: str) -> None:
    cache = KEY.SimilarQuestionCache()
    cache.put(stored, "answer")
    assert cache.get(asked) == "answer"


def test_similarity_is_a_score_between_zero_and_one() -> None:
    pairs = [(a, b) for a, b in DIFFERENT] + [("a b c d", "a b c e"), ("x", "x")]
    for a, b in pairs:
        score = KEY.question_similarity(a, b)
        assert 0.0 <= score <= 1.0 and not math.isnan(score)
        assert score == KEY.question_similarity(b, a)
    with pytest.raises(ValueError, match="threshold"):
        KEY.SimilarQuestionCache(threshold=float("nan"))
