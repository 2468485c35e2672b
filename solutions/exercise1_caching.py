"""Answer key for 01_caching.ipynb — generated from source/ch07/01_caching.py by tools/build.py; do not edit.

Run: python solutions/exercise1_caching.py  (backend: $WORKBOOK_LM, default local)
"""

import asyncio


async def _main() -> None:
    # # Exercise 1 — Caching LM calls, done properly
    import dspy_workbook as wb

    lm = wb.setup()

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

    # ## What a naive cache gets wrong
    # ## Task 1 — a key that changes whenever the answer could
    def inputs_only_key(inputs: dict) -> str:
        """The naive key: md5 of the inputs and nothing else (don't use this)."""
        return hashlib.md5(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


    question = {"question": "What is DSPy?"}
    print("small model, temperature 0  :", inputs_only_key(question)[:12])
    print("large model, temperature 0.9:", inputs_only_key(question)[:12], "← same key, so the same stale answer")

    def make_cache_key(inputs: dict, *, signature: str, model: str, lm_settings: dict | None = None) -> str:
        """A deterministic hex key for one LM-backed call: inputs + signature + model + LM settings."""
        # Steps: 1) payload = {"inputs": ..., "signature": ..., "model": ..., "lm_settings": ...}
        #        2) text = json.dumps(payload, sort_keys=True, default=str)
        #        3) return the sha256 hexdigest of text.encode("utf-8")
        payload = {"inputs": inputs, "signature": signature, "model": model, "lm_settings": lm_settings or {}}
        text = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    ex1.check_cache_key(make_cache_key)

    base = dict(signature="question -> answer", model="sim/a", lm_settings={"temperature": 0.0})
    k = make_cache_key({"question": "What is DSPy?"}, **base)
    assert isinstance(k, str) and k, "make_cache_key must return a non-empty string"
    assert k == make_cache_key({"question": "What is DSPy?"}, **base), "same call, different key"
    assert k != make_cache_key({"question": "What is DSPy?"}, **{**base, "model": "sim/b"}), "the model must be in the key"
    two = {"question": "q", "context": "c"}
    assert make_cache_key(two, **base) == make_cache_key(dict(reversed(list(two.items()))), **base)
    assert k != make_cache_key({"question": "What is dspy?"}, **base)
    assert k != make_cache_key({"question": "What is DSPy?"}, **{**base, "signature": "question -> answer\nBe brief."})
    assert k != make_cache_key({"question": "What is DSPy?"}, **{**base, "lm_settings": {"temperature": 0.9}})
    assert k != make_cache_key({"question": "What is DSPy?"}, **{**base, "lm_settings": {"temperature": 0.0, "max_tokens": 20}})
    assert re.fullmatch(r"[0-9A-Za-z_-]+", k), "the key is used as a file name"

    # ## Task 2 — files that are never half-written
    def write_json_atomic(path: Path | str, data: dict) -> None:
        """Write `data` as JSON to `path` atomically: temp file in the same folder, then `os.replace`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)  # parents=True: nested cache folders work
        # Steps: fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        #        try: write json.dumps(data) through os.fdopen(fd, "w", encoding="utf-8"); os.replace(tmp, path)
        #        except BaseException: remove tmp (if it still exists) and re-raise
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


    def read_json_entry(path: Path | str) -> dict | None:
        """The dict stored at `path`, or None if the file is missing, unreadable, truncated or not a dict."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    ex1.check_atomic_io(write_json_atomic, read_json_entry)

    demo_dir = wbc.fresh_cache_dir("ex1/truncate_demo")
    entry_path = demo_dir / "entry.json"
    write_json_atomic(entry_path, {"value": {"answer": "DSPy is a framework for programming LMs."}})
    print("intact   :", read_json_entry(entry_path))
    raw = entry_path.read_bytes()
    entry_path.write_bytes(raw[: len(raw) // 2])
    print("truncated:", read_json_entry(entry_path))
    print("files left in the folder:", sorted(p.name for p in demo_dir.iterdir()))

    with tempfile.TemporaryDirectory() as tmp_dir:
        target = Path(tmp_dir) / "nested" / "entry.json"
        write_json_atomic(target, {"value": {"answer": "42"}})
        assert read_json_entry(target) == {"value": {"answer": "42"}}, "round trip failed"
        target.write_text('{"value": {"answ')
        assert read_json_entry(target) is None, "a truncated file must read as None (a miss)"
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

    # ## Task 3 — the disk cache: get, put, hits and misses
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
            entry = read_json_entry(self.path_for(key))
            if entry is None or "value" not in entry or (self.ttl is not None and self._expired(entry)):
                self.misses += 1
                return None
            self.hits += 1
            return entry["value"]

        def put(self, key: str, value: Any) -> None:
            """Store `value` under `key` (atomically), stamped with the current time."""
            # One line: write_json_atomic(<the key's path>, {"key": ..., "created": self.clock(), "value": ...})
            write_json_atomic(self.path_for(key), {"key": key, "created": self.clock(), "value": value})

        # --- Task 4 -------------------------------------------------------------------------------
        def _expired(self, entry: dict) -> bool:
            """True when `entry` is older than `self.ttl` (or has no usable timestamp); called only if ttl is set."""
            # created = entry.get("created"); not an int or float -> True; else compare its age with self.ttl
            created = entry.get("created")
            if not isinstance(created, (int, float)) or isinstance(created, bool):
                return True
            return self.clock() - created > self.ttl

        def invalidate(self, key: str) -> bool:
            """Delete `key`'s entry; True if there was one."""
            # Path.exists() gives the answer to return; Path.unlink(missing_ok=True) deletes without raising
            path = self.path_for(key)
            existed = path.exists()
            path.unlink(missing_ok=True)
            return existed

        def invalidate_older_than(self, seconds: float) -> int:
            """Delete every entry created more than `seconds` ago (and any unreadable one); return how many."""
            # now = self.clock(); for each path in self.directory.glob("*.json"): read it, and delete it
            # if it is unreadable, if its "created" is not a number, or if now - created > seconds
            removed = 0
            now = self.clock()
            for path in self.directory.glob("*.json"):
                entry = read_json_entry(path)
                created = entry.get("created") if entry else None
                if not isinstance(created, (int, float)) or now - created > seconds:
                    path.unlink(missing_ok=True)
                    removed += 1
            return removed

        def clear(self) -> int:
            """Delete every entry of this namespace; return how many."""
            # every self.directory.glob("*.json") goes; only this namespace's folder is touched
            removed = 0
            for path in self.directory.glob("*.json"):
                path.unlink(missing_ok=True)
                removed += 1
            return removed

    ex1.check_disk_cache(DiskCache)

    with tempfile.TemporaryDirectory() as tmp_dir:
        cache = DiskCache(Path(tmp_dir) / "a" / "b")
        assert cache.get("k1") is None and (cache.hits, cache.misses) == (0, 1)
        cache.put("k1", {"answer": "42"})
        assert cache.get("k1") == {"answer": "42"} and (cache.hits, cache.misses) == (1, 1)
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

    # ## Task 4 — expiry and invalidation
    ex1.check_invalidation(DiskCache)

    clock = wbc.ManualClock()
    ttl_cache = DiskCache(wbc.fresh_cache_dir("ex1/ttl_demo"), ttl=60, clock=clock)
    ttl_cache.put("capital-france", {"answer": "Paris"})
    clock.advance(59)
    print("after 59 s:", ttl_cache.get("capital-france"))
    clock.advance(2)
    print("after 61 s:", ttl_cache.get("capital-france"))
    v2 = DiskCache(ttl_cache.directory.parent, namespace="v2", clock=clock)
    print("v2 sees v1 entries?", v2.get("capital-france") is not None)

    with tempfile.TemporaryDirectory() as tmp_dir:
        clock = wbc.ManualClock()
        cache = DiskCache(tmp_dir, ttl=10, clock=clock)
        cache.put("k", "v")
        clock.advance(11)
        assert cache.get("k") is None, "an entry older than the TTL must be a miss"
        cache.put("k", "v")
        assert cache.invalidate("k") is True and cache.get("k") is None
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

    # ## Task 5 — a DSPy module that checks the cache first
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
            calls = self.hits + self.misses
            return self.hits / calls if calls else 0.0

        def forward(self, **inputs: Any) -> dspy.Prediction:
            """Answer from the cache if possible, else from the LM (and remember the answer)."""
            # Steps: key = self.cache_key(inputs); cached = self.cache.get(key)
            #        hit:  self.hits += 1; return dspy.Prediction(**cached)
            #        miss: self.misses += 1; prediction = self.predict(**inputs)
            #              self.cache.put(key, dict(prediction)); return prediction
            key = self.cache_key(inputs)
            cached = self.cache.get(key)
            if cached is not None:
                self.hits += 1
                return dspy.Prediction(**cached)
            self.misses += 1
            prediction = self.predict(**inputs)
            self.cache.put(key, dict(prediction))
            return prediction

    ex1.check_cached_module(CachedPredict, DiskCache)

    sim = wb.sim_lm(latency=0.01)
    with tempfile.TemporaryDirectory() as tmp_dir, dspy.context(lm=sim):
        program = CachedPredict(cache=DiskCache(tmp_dir))
        assert program.hit_rate == 0.0, "hit_rate before any call must be 0.0"
        first = program(question="What is DSPy?")
        program(question="How do I optimize?")
        again = program(question="What is DSPy?")
        assert (program.hits, program.misses) == (1, 2)
        assert again.answer == first.answer and sim.engine.stats.calls == 2, "a hit must not call the LM"
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

    # ### The three-query run, on the course model
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

    uncached = dspy.Predict("question -> answer", cache=False)
    start = time.perf_counter()
    for inp in test_inputs:
        uncached(**inp)
    uncached_seconds = time.perf_counter() - start
    print(f"Time with our cache   : {cached_seconds:.2f}s  (2 LM calls)")
    print(f"Time without any cache: {uncached_seconds:.2f}s  (3 LM calls)")

    # ## A realistic stream: latency per call and hit rate over time
    stream = wbc.zipf_stream(n=30, seed=0)
    streamed = CachedPredict(cache=DiskCache(wbc.fresh_cache_dir("ex1/stream")))
    records = wbc.run_stream(streamed, stream)
    print(f"{len(stream)} calls, {len(set(stream))} distinct questions")
    print(f"Cache hits: {streamed.hits}, misses: {streamed.misses}, hit rate: {streamed.hit_rate:.1%}")

    wbc.show_figure(wbc.stream_figure(records))
    hit_ms = [r.seconds * 1000 for r in records if r.hit]
    miss_ms = [r.seconds * 1000 for r in records if not r.hit]
    print(f"median hit {wbc.p50(hit_ms):.2f} ms, median miss {wbc.p50(miss_ms):.0f} ms")

    # ## DSPy's built-in cache
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

    builtin(question="What is a cache key?", config={"cache": False})
    print("cache=False      -> cached?", last_call_was_cached(lm))
    builtin(question="What is a cache key?", config={"rollout_id": 1, "temperature": 1.0})
    print("rollout_id=1     -> cached?", last_call_was_cached(lm))
    builtin(question="What is a cache key?", config={"rollout_id": 1, "temperature": 1.0})
    print("rollout_id=1 again -> cached?", last_call_was_cached(lm))

    answer = await builtin.acall(question="What is a cache key?")
    print("acall after a sync warm-up -> cached?", last_call_was_cached(lm))
    answer = await builtin.acall(question="What is a cache key?")
    print("second acall              -> cached?", last_call_was_cached(lm))

    from dspy.clients.execution import IGNORED_CACHE_KEYS

    request = {"model": "openai/llama-3", "messages": [{"role": "user", "content": "hi"}]}
    key_a = dspy.cache.cache_key({**request, "api_base": "http://laptop:8000"}, IGNORED_CACHE_KEYS)
    key_b = dspy.cache.cache_key({**request, "api_base": "https://prod.example.com"}, IGNORED_CACHE_KEYS)
    print("ignored in the key:", IGNORED_CACHE_KEYS)
    print("two endpoints, same key?", key_a == key_b)

    # ### Hit latency: ours against DSPy's, in one run
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

    # ## Task 6 (advanced) — partial matching of similar questions
    def normalize_question(text: str) -> str:
        """Lower case, punctuation and extra whitespace removed: 'What is  DSPy?!' -> 'what is dspy'."""
        # re.findall(r"[a-z0-9]+", text.lower()) gives the words: join them with single spaces
        return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


    def question_similarity(a: str, b: str) -> float:
        """Token Jaccard similarity of two questions after normalising, from 0.0 to 1.0."""
        # A, B = the sets of words of each normalised question; |A & B| / |A | B|; both empty -> 1.0
        words_a, words_b = set(normalize_question(a).split()), set(normalize_question(b).split())
        if not words_a and not words_b:
            return 1.0
        return len(words_a & words_b) / len(words_a | words_b)


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
            best_score, best_answer = 0.0, None
            for stored, answer in self.entries.items():
                score = question_similarity(question, stored)
                if score > best_score:
                    best_score, best_answer = score, answer
            return best_answer if best_score >= self.threshold else None

    ex1.check_similar_cache(SimilarQuestionCache, normalize_question)

    similar = SimilarQuestionCache(threshold=0.9)
    similar.put("What is the capital of France?", "Paris")
    for asked in ["what is the capital of france", "  WHAT is the capital of France?!  ",
                  "What is the capital of Spain?", "What's the capital of France?"]:
        score = max(question_similarity(asked, stored) for stored in similar.entries)
        print(f"{asked!r:40} similarity {score:.2f} -> {similar.get(asked)!r}")

    assert normalize_question("  What is   DSPy?! ") == "what is dspy"
    sc = SimilarQuestionCache()
    sc.put("What is the capital of France?", "Paris")
    assert sc.get("what is the capital of france") == "Paris", "case and punctuation must not matter"
    assert sc.get("What is the capital of Spain?") is None, "a different question must not be answered from the cache"
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

    # ## When *not* to cache, and production notes
    # ## Summary


asyncio.run(_main())
