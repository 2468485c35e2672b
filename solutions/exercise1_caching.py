"""Answer key for 01_caching.ipynb — generated from source/ch07/01_caching.py by tools/build.py; do not edit.

Run: python solutions/exercise1_caching.py  (backend: $WORKBOOK_LM, default local)
"""

import asyncio


async def _main() -> None:
    # # Exercise 1 — Caching LM calls, done properly
    import dspy_workbook as wb

    lm = wb.setup()

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

    # ## Before you build anything: DSPy's own cache
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

    builtin(question="What is a cache key?", config={"cache": False})
    print("cache=False        -> cached?", last_call_was_cached(lm))
    builtin(question="What is a cache key?", config={"rollout_id": 1, "temperature": 1.0})
    print("rollout_id=1       -> cached?", last_call_was_cached(lm))
    builtin(question="What is a cache key?", config={"rollout_id": 1, "temperature": 1.0})
    print("rollout_id=1 again -> cached?", last_call_was_cached(lm))

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
    wbc.use_dspy_memory_cache()  # back to the course default

    # ### So why build a cache of our own?
    # ## What a naive cache gets wrong
    # ## Task 1 — a key that changes whenever the answer could
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

    from decimal import Decimal

    for left, right in [(["a", "b"], ("a", "b")), (Decimal("1.10"), "1.10"), ({1: "x"}, {"1": "x"})]:
        same = json.dumps(left, default=str) == json.dumps(right, default=str)
        print(f"{left!r:>16} vs {right!r:<12} same JSON text? {same}")

    def tag_types(value: Any) -> Any:
        """`value` as JSON-ready data that keeps apart what JSON alone would merge (tuple/list, ...)."""
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


    def make_cache_key(
        inputs: dict, *, signature: str, model: str, lm_settings: dict | None = None
    ) -> str:
        """SHA-256 hex digest of all that can change the answer: inputs, signature, model, settings."""
        payload = {
            "inputs": tag_types(inputs),
            "signature": signature,
            "model": model,
            "lm_settings": tag_types(lm_settings or {}),
        }
        text = json.dumps(payload, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    ex1.check_cache_key(make_cache_key)

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

    # ## Task 2 — files that are never half-written
    def write_json_atomic(path: Path | str, data: dict) -> None:
        """Write `data` as JSON to `path` atomically: a `.tmp` file beside it, then `os.replace`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)  # parents=True: nested cache folders work
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


    def read_json_entry(path: Path | str) -> dict | None:
        """The dict stored at `path`, or None if it is missing, unreadable, damaged or not a dict."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
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
    entry_path.write_text("[" * 100_000)
    print("nested   :", read_json_entry(entry_path))
    print("files left in the folder:", sorted(p.name for p in demo_dir.iterdir()))

    import tempfile as _tempfile
    from pathlib import Path as _Path

    with _tempfile.TemporaryDirectory() as tmp_dir:
        target = _Path(tmp_dir) / "nested" / "entry.json"
        write_json_atomic(target, {"value": {"answer": "42"}})
        assert read_json_entry(target) == {"value": {"answer": "42"}}, "round trip failed"
        target.write_text('{"value": {"answ')
        assert read_json_entry(target) is None, "a truncated file must read as None (a miss)"
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

    # ## Task 3 — the disk cache: get, put, hits and misses
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
            entry = read_json_entry(self.path_for(key))
            if entry is None or "value" not in entry or self.is_stale(entry):
                self.misses += 1
                return None
            self.hits += 1
            return entry["value"]

        def put(self, key: str, value: Any) -> None:
            """Store `value` under `key` (atomically), stamped with the current time."""
            write_json_atomic(self.path_for(key), {"key": key, "created": self.clock(), "value": value})

    ex1.check_disk_cache(DiskCache)

    import tempfile as _tempfile
    from pathlib import Path as _Path

    with _tempfile.TemporaryDirectory() as tmp_dir:
        cache = DiskCache(_Path(tmp_dir) / "a" / "b")
        assert cache.get("k1") is None and (cache.hits, cache.misses) == (0, 1)
        cache.put("k1", {"answer": "42"})
        assert cache.get("k1") == {"answer": "42"} and (cache.hits, cache.misses) == (1, 1)
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

    # ## Task 4 — expiry, damaged timestamps and invalidation
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
        created = entry.get("created")
        if isinstance(created, bool) or not isinstance(created, int | float):
            return None
        if not math.isfinite(created) or created > now:
            return None
        return now - created


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
            if self.ttl is None:
                return False
            age = entry_age(entry, self.clock())
            return age is None or age > self.ttl

        def invalidate(self, key: str) -> bool:
            """Delete `key`'s entry; True if there was one."""
            path = self.path_for(key)  # refuses keys that would point outside the cache
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            return True

        def invalidate_older_than(self, seconds: float) -> int:
            """Delete every entry older than `seconds` or with a damaged timestamp; return how many."""
            seconds = seconds_setting("seconds", seconds)
            removed, now = 0, self.clock()
            for path in self.directory.glob("*.json"):
                age = entry_age(read_json_entry(path) or {}, now)
                if age is None or age > seconds:
                    path.unlink(missing_ok=True)
                    removed += 1
            self.remove_orphans()
            return removed

        def clear(self) -> int:
            """Delete every entry of this namespace (and old orphan temp files); return how many."""
            removed = 0
            for path in self.directory.glob("*.json"):
                path.unlink(missing_ok=True)
                removed += 1
            self.remove_orphans()
            return removed

    ex1.check_expiry(ExpiringCache, entry_age)

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

    # ## Task 5 — a DSPy module that checks the cache first
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
            calls = self.hits + self.misses
            return self.hits / calls if calls else 0.0

        def forward(self, **inputs: Any) -> dspy.Prediction:
            """Answer from the cache if possible, else from the LM (and remember the answer)."""
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

    ex1.check_cached_module(CachedPredict)

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

    # ### The three-query run, on the course model
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

    uncached = dspy.Predict("question -> answer", cache=False)
    start = time.perf_counter()
    for inp in test_inputs:
        uncached(**inp)
    uncached_seconds = time.perf_counter() - start
    print(f"Time with our cache   : {cached_seconds:.2f}s  (2 LM calls)")
    print(f"Time without any cache: {uncached_seconds:.2f}s  (3 LM calls)")

    # ### A cache that fails must not cost the answer
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

    # ## A realistic stream: latency per call and hit rate over time
    stream = wbc.zipf_stream(n=30, seed=0)
    streamed = CachedPredict(cache=ExpiringCache(wbc.fresh_cache_dir("ex1/stream")))
    records = wbc.run_stream(streamed, stream)

    print(f"{len(stream)} calls, {len(set(stream))} distinct questions")
    print(f"Cache hits: {streamed.hits}, misses: {streamed.misses}, hit rate: {streamed.hit_rate:.1%}")

    wbc.show_figure(wbc.stream_figure(records))
    display(
        summary_table(
            {
                "hits": [r.seconds for r in records if r.hit],
                "misses": [r.seconds for r in records if not r.hit],
            }
        )[["count", "p50 ms", "p90 ms"]]
    )

    # ### Hit latency: ours against DSPy's, in one run
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

    # ## Going further (optional, 2 bonus points) — matching *similar* questions, safely
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

    assert normalize_question("  What is   DSPy?! ") == "what is dspy"
    sc = SimilarQuestionCache()
    sc.put("What is the capital of France?", "Paris")
    assert sc.get("what is the capital of france") == "Paris", "case and punctuation must not matter"
    assert sc.get("What is the capital of Spain?") is None, (
        "a different question must not be answered from the cache"
    )
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

    # ## When *not* to cache, and production notes
    # ## Check everything, then submit
    ex1.check_all()

    # ## Summary
    # ## Questionnaire
    # ## Further research


asyncio.run(_main())
