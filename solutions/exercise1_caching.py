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
    import re
    import time
    import warnings
    from decimal import Decimal
    from pathlib import Path
    from typing import Any

    import dspy

    from dspy_workbook import caching as wbc
    from dspy_workbook.checks import ex1

    # ## Before you build anything: DSPy's own cache
    def last_call_was_cached(lm: dspy.LM) -> bool:
        """True when the LM's most recent call was answered by DSPy's cache (no tokens used)."""
        return lm.history[-1]["usage"] == {}


    builtin = dspy.Predict("question -> answer")
    for config in [{}, {}, {"cache": False}, {"rollout_id": 1, "temperature": 1.0}]:
        builtin(question="What is a cache key?", config=config)
        print(f"config={config!s:38} answered from DSPy's cache? {last_call_was_cached(lm)}")

    # ## Task 1 — a key that changes whenever the answer could
    for left, right in [(["a", "b"], ("a", "b")), ({1: "x"}, {"1": "x"}), (Decimal("1.10"), "1.10")]:
        same_json = json.dumps(left, default=str) == json.dumps(right, default=str)
        same_tags = wbc.tag_types(left) == wbc.tag_types(right)
        print(f"{left!r:>16} vs {right!r:<12} same JSON? {same_json!s:5}  same tag_types? {same_tags}")

    def make_cache_key(
        inputs: dict, *, signature: str, model: str, lm_settings: dict | None = None
    ) -> str:
        """SHA-256 hex digest of all that can change the answer: inputs, signature, model, settings."""
        payload = {
            "inputs": inputs,
            "signature": signature,
            "model": model,
            "lm_settings": lm_settings or {},
        }
        text = json.dumps(wbc.tag_types(payload), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    ex1.check_cache_key(make_cache_key)

    import re as _re

    _base = dict(signature="question -> answer", model="sim/a", lm_settings={"temperature": 0.0})
    _key = make_cache_key({"question": "What is DSPy?"}, **_base)
    assert type(_key) is str and _re.fullmatch(r"[0-9a-f]{64}", _key), f"not SHA-256 hex: {_key!r}"
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

    # ## Task 2 — a disk cache that expires entries and never trusts a file
    KEY_PATTERN = re.compile(r"[0-9A-Za-z_-]{1,128}")  # keys and namespaces become file names


    def entry_age(entry: dict, now: float) -> float | None:
        """Seconds since `entry["created"]`, or None when that timestamp is missing or damaged."""
        created = entry.get("created")
        usable = type(created) in (int, float) and 0 <= created <= now  # False for NaN, bool, text
        return now - created if usable else None


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
            entry = wbc.read_json_entry(self.path_for(key)) or {}
            age = entry_age(entry, self.clock())
            expired = self.ttl is not None and (age is None or age > self.ttl)
            return None if expired else entry.get("value")

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

    ex1.check_disk_cache(DiskCache, entry_age)

    import tempfile as _tempfile

    import dspy_workbook.caching as _wbc

    with _tempfile.TemporaryDirectory() as _tmp:
        _clock = _wbc.ManualClock()
        _cache = DiskCache(_tmp, ttl=60, clock=_clock)
        _cache.put("k1", {"answer": "42"})
        _clock.advance(61)
        assert _cache.get("k1") is None, "an entry older than the TTL must be a miss (None)"
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

    # ## Task 3 — a DSPy module that checks the cache first
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
            return self.hits / max(self.hits + self.misses, 1)

        def forward(self, **inputs: Any) -> dspy.Prediction:
            """Answer from the cache if possible, else from the LM (and remember the answer)."""
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

    ex1.check_cached_module(CachedPredict)

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

    # ## With and without the cache
    questions = ["What is DSPy?", "How do I optimize?", "What is DSPy?"]  # the third is a repeat
    program = CachedPredict(cache=DiskCache(wbc.fresh_cache_dir("ex1/three_queries"), ttl=24 * 3600))
    uncached = dspy.Predict("question -> answer", cache=False)
    uncached(question="Warm-up: say hello.")
    for name, module in [("with our cache", program), ("without any cache", uncached)]:
        start = time.perf_counter()
        answers = [module(question=q).answer for q in questions]
        print(f"{name:18}: {time.perf_counter() - start:.2f} s for {len(questions)} questions")

    print(f"Cache hits: {program.hits}, misses: {program.misses}, hit rate: {program.hit_rate:.1%}")

    # ## Going further (optional, ungraded)
    # ### DSPy's key: sync against async, and the endpoint
    answer = await builtin.acall(question="What is a cache key?")
    print("acall after a sync warm-up -> cached?", last_call_was_cached(lm))
    answer = await builtin.acall(question="What is a cache key?")
    print("second acall              -> cached?", last_call_was_cached(lm))

    from dspy.clients.execution import IGNORED_CACHE_KEYS

    request = {"model": "openai/llama-3", "messages": [{"role": "user", "content": "hi"}]}
    key_a = dspy.cache.cache_key({**request, "api_base": "http://laptop:8000"}, IGNORED_CACHE_KEYS)
    key_b = dspy.cache.cache_key(
        {**request, "api_base": "https://prod.example.com"}, IGNORED_CACHE_KEYS
    )
    print("ignored in the key:", IGNORED_CACHE_KEYS)
    print("two endpoints, same key?", key_a == key_b)

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

    # ### Why the atomic write: a file cut in half, and writers that were killed
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

    # ### A cache that fails must not cost the answer
    blocked = DiskCache(wbc.fresh_cache_dir("ex1/blocked"))
    blocked.directory.rmdir()
    blocked.directory.write_text("not a folder")  # every write into it now fails
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reply = CachedPredict(cache=blocked)(question="What is DSPy?")
    print(
        "answered:", bool(reply.answer), "| warnings:", [str(w.message).split(" (")[0] for w in caught]
    )

    # ### A realistic stream: latency per call and hit rate over time
    stream = wbc.zipf_stream(n=30, seed=0)
    streamed = CachedPredict(cache=DiskCache(wbc.fresh_cache_dir("ex1/stream")))
    records = wbc.run_stream(streamed, stream)

    print(f"{len(stream)} calls, {len(set(stream))} distinct questions")
    print(f"Cache hits: {streamed.hits}, misses: {streamed.misses}, hit rate: {streamed.hit_rate:.1%}")

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

    # ### Hit latency: ours against DSPy's
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

    # ### An optional task: matching *similar* questions, safely
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

    NEGATIONS = frozenset(
        {"not", "no", "never", "none", "nothing", "nobody", "neither", "nor", "without", "cannot"}
    )
    SIGNS = frozenset("+-*/^=<>%")


    def normalize_question(text: str) -> str:
        """Case-folded words (any script), numbers and signs: "Isn't 2+2=4?" -> 'is not 2 + 2 = 4'."""
        text = text.casefold().replace("n't", " not").replace("n\u2019t", " not")
        return " ".join(re.findall(r"[^\W_]+|[-+*/^=<>%]", text))


    def question_similarity(a: str, b: str) -> float:
        """0.0 to 1.0, order-aware; 0.0 unless numbers, signs and negations agree, or if empty."""
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
            best_score, best_answer = 0.0, None
            for stored, answer in self.entries.items():
                score = question_similarity(question, stored)
                if score > best_score:
                    best_score, best_answer = score, answer
            return best_answer if best_score >= self.threshold else None

    ex1.check_similar_cache(SimilarQuestionCache, normalize_question, question_similarity)

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

    # ### When *not* to cache, and production notes
    # ## Summary
    # ## Questionnaire
    # ## Further research
    # ## Check everything
    ex1.check_all()

    # ## How to submit


asyncio.run(_main())
