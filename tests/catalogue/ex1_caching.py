"""Exercise 1 (caching): answers a student could hand in, right and wrong.

Every entry is the whole solution cell: the master's given code with the student's parts in place
of its `### BEGIN SOLUTION … ### END SOLUTION` regions (`_cell`), so the given code can never
drift from the master's; a few entries rewrite the whole cell. Each wrong entry breaks one stated
behaviour and keeps the others (a few are the typical mistakes the issue and the old grading test
named); each right entry is a style other than the master's. `tests/_kit.py` runs every entry
through its task's self-check and graded cell, which must agree with each other and with `correct`.
"""

from __future__ import annotations

import re
import textwrap
from functools import cache
from pathlib import Path

import jupytext

from tests.catalogue import Submission

MASTER = "01_caching"
_MASTER_FILE = Path(__file__).resolve().parents[2] / "source" / "ch07" / f"{MASTER}.py"
_REGION = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION\n", re.S | re.M)


@cache  # the entries below ask ~60 times; parsing the master once saves seconds per process
def _solution_cell(grade_id: str) -> str:
    for cell in jupytext.read(_MASTER_FILE, fmt="py:percent").cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            return cell.source + "\n"
    raise LookupError(f"{MASTER} has no cell with grade_id {grade_id!r}")


def _solution_regions(grade_id: str) -> list[str]:
    """The master's own answer in each solution region of a cell (for entries that keep one)."""
    regions = _REGION.finditer(_solution_cell(grade_id))
    return [m.group(0).split("\n", 1)[1].rsplit("### END SOLUTION", 1)[0] for m in regions]


def _cell(grade_id: str, *parts: str, before: str = "") -> str:
    """The master's solution cell with its solution regions replaced, in order, by `parts`
    (each dedented, then indented like the region), after `before` (e.g. an import)."""
    source = _solution_cell(grade_id)
    regions = list(_REGION.finditer(source))
    if len(regions) != len(parts):
        raise ValueError(f"{grade_id} has {len(regions)} solution regions, not {len(parts)}")
    out, end = [], 0
    for region, part in zip(regions, parts, strict=True):
        indent = region.group(1)
        body = textwrap.indent(textwrap.dedent(part).strip("\n"), indent) + "\n"
        out += [source[end : region.start()], body]
        end = region.end()
    return textwrap.dedent(before).strip("\n") + "\n" + "".join(out) + source[end:]


# -- Task 1: make_cache_key -------------------------------------------------------------------
_PAYLOAD = """
payload = {
    "inputs": inputs,
    "signature": signature,
    "model": model,
    "lm_settings": lm_settings or {},
}
"""


def _key(body: str) -> str:
    return _cell("cache_key", body)


KEY_RIGHT = [
    Submission(
        "cache_key",
        "each part tagged and fed to one sha256 with update()",
        _key(
            """
            digest = hashlib.sha256()
            for part in (inputs, signature, model, lm_settings or {}):
                digest.update(json.dumps(wbc.tag_types(part), sort_keys=True).encode())
                digest.update(b"\\x00")
            return digest.hexdigest()
            """
        ),
        True,
    ),
    Submission(
        "cache_key",
        "repr of the tagged parts instead of JSON text",
        _key(
            """
            parts = [inputs, signature, model, lm_settings or {}]
            return hashlib.sha256(repr(wbc.tag_types(parts)).encode()).hexdigest()
            """
        ),
        True,
    ),
    Submission(
        "cache_key",
        "an own recursive canonical form (type names and sorted reprs), no tag_types",
        _key(
            """
            def canon(value):
                if isinstance(value, dict):
                    pairs = [(canon(k), canon(v)) for k, v in value.items()]
                    return ("dict", sorted(pairs, key=repr))
                if isinstance(value, list | tuple):
                    return (type(value).__name__, [canon(item) for item in value])
                if isinstance(value, set | frozenset):
                    return (type(value).__name__, sorted((canon(i) for i in value), key=repr))
                return (type(value).__qualname__, repr(value))

            text = repr(canon([inputs, signature, model, lm_settings or {}]))
            return hashlib.sha256(text.encode("utf-8")).hexdigest()
            """
        ),
        True,
    ),
    Submission(
        "cache_key",
        "a student trial: tag_types over the whole payload, no sort_keys (tag_types sorts)",
        _key(
            """
            payload = wbc.tag_types(
                {"inputs": inputs, "signature": signature, "model": model,
                 "lm_settings": lm_settings or {}}
            )
            return hashlib.sha256(json.dumps(payload).encode("utf-8")).hexdigest()
            """
        ),
        True,
    ),
]

KEY_WRONG = [
    Submission(
        "cache_key",
        "md5 of the inputs only (the seed's starter)",
        _key("return hashlib.md5(json.dumps(inputs, sort_keys=True).encode()).hexdigest()"),
        False,
    ),
    Submission(
        "cache_key",
        "format: md5 of everything (32 hex characters)",
        _key(
            _PAYLOAD + "return hashlib.md5(json.dumps(wbc.tag_types(payload)).encode()).hexdigest()"
        ),
        False,
    ),
    Submission(
        "cache_key",
        "format: upper-case hex",
        _key(
            _PAYLOAD
            + "return hashlib.sha256(json.dumps(wbc.tag_types(payload)).encode())"
            + ".hexdigest().upper()"
        ),
        False,
    ),
    Submission(
        "cache_key",
        "format: the raw digest bytes",
        _key(
            _PAYLOAD + "return hashlib.sha256(json.dumps(wbc.tag_types(payload)).encode()).digest()"
        ),
        False,
    ),
    Submission(
        "cache_key",
        "determinism: the time is in the key",
        _key(
            _PAYLOAD
            + 'payload["at"] = time.time()\n'
            + "return hashlib.sha256(json.dumps(wbc.tag_types(payload)).encode()).hexdigest()"
        ),
        False,
    ),
    Submission(
        "cache_key",
        "order: the inputs' pairs kept in insertion order",
        _key(
            """
            ordered = [[k, wbc.tag_types(v)] for k, v in inputs.items()]
            rest = wbc.tag_types([signature, model, lm_settings or {}])
            text = json.dumps([ordered, rest])
            return hashlib.sha256(text.encode()).hexdigest()
            """
        ),
        False,
    ),
    Submission(
        "cache_key",
        "order: the settings' pairs kept in insertion order",
        _key(
            """
            settings = [[k, wbc.tag_types(v)] for k, v in (lm_settings or {}).items()]
            rest = wbc.tag_types([inputs, signature, model])
            text = json.dumps([rest, settings])
            return hashlib.sha256(text.encode()).hexdigest()
            """
        ),
        False,
    ),
    Submission(
        "cache_key",
        "None settings: lm_settings=None and {} give different keys",
        _key(
            """
            payload = [inputs, signature, model, lm_settings]
            return hashlib.sha256(json.dumps(wbc.tag_types(payload)).encode()).hexdigest()
            """
        ),
        False,
    ),
    Submission(
        "cache_key",
        "completeness: the model left out",
        _key(
            """
            payload = [inputs, signature, lm_settings or {}]
            return hashlib.sha256(json.dumps(wbc.tag_types(payload)).encode()).hexdigest()
            """
        ),
        False,
    ),
    Submission(
        "cache_key",
        "completeness: the signature left out",
        _key(
            """
            payload = [inputs, model, lm_settings or {}]
            return hashlib.sha256(json.dumps(wbc.tag_types(payload)).encode()).hexdigest()
            """
        ),
        False,
    ),
    Submission(
        "cache_key",
        "completeness: the LM settings left out",
        _key(
            """
            payload = [inputs, signature, model]
            return hashlib.sha256(json.dumps(wbc.tag_types(payload)).encode()).hexdigest()
            """
        ),
        False,
    ),
    Submission(
        "cache_key",
        "types: json default=str merges list/tuple, Decimal/str and 1/'1'",
        _key(
            _PAYLOAD
            + "text = json.dumps(payload, sort_keys=True, default=str)\n"
            + "return hashlib.sha256(text.encode()).hexdigest()"
        ),
        False,
    ),
    Submission(
        "cache_key",
        "types: tag_types on the inputs only (the settings' types merge)",
        _key(
            """
            payload = {
                "inputs": wbc.tag_types(inputs),
                "signature": signature,
                "model": model,
                "lm_settings": lm_settings or {},
            }
            text = json.dumps(payload, sort_keys=True)
            return hashlib.sha256(text.encode()).hexdigest()
            """
        ),
        False,
    ),
    Submission(
        "cache_key",
        "types: json default=repr (Decimal apart, but list = tuple and 1 = '1')",
        _key(
            _PAYLOAD
            + "text = json.dumps(payload, sort_keys=True, default=repr)\n"
            + "return hashlib.sha256(text.encode()).hexdigest()"
        ),
        False,
    ),
    Submission(
        "cache_key",
        "inputs: text case-folded for more hits ('What is DSPy?' = 'what is dspy?')",
        _key(
            """
            folded = {k: v.casefold() if isinstance(v, str) else v for k, v in inputs.items()}
            payload = {
                "inputs": folded,
                "signature": signature,
                "model": model,
                "lm_settings": lm_settings or {},
            }
            return hashlib.sha256(json.dumps(wbc.tag_types(payload)).encode()).hexdigest()
            """
        ),
        False,
    ),
]


# -- Task 2: entry_age and DiskCache.get --------------------------------------------------------
_AGE = """
created = entry.get("created")
usable = type(created) in (int, float) and 0 <= created <= now
return now - created if usable else None
"""
_GET = """
entry = wbc.read_json_entry(self.path_for(key)) or {}
age = entry_age(entry, self.clock())
expired = self.ttl is not None and (age is None or age > self.ttl)
return None if expired else entry.get("value")
"""


def _disk(age: str = _AGE, get: str = _GET, before: str = "") -> str:
    return _cell("disk_cache", age, get, before=before)


DISK_RIGHT = [
    Submission(
        "disk_cache",
        "float() in try, math.isfinite, its own json read in get",
        _disk(
            """
            created = entry.get("created")
            if isinstance(created, bool) or not isinstance(created, int | float):
                return None
            try:
                as_float = float(created)
            except OverflowError:  # an int too large for a float
                return None
            if not math.isfinite(as_float) or as_float < 0 or as_float > now:
                return None
            return now - created
            """,
            """
            try:
                entry = json.loads(self.path_for(key).read_text(encoding="utf-8"))
            except (OSError, ValueError, RecursionError):
                return None
            if not isinstance(entry, dict) or "value" not in entry:
                return None
            if self.ttl is not None:
                age = entry_age(entry, self.clock())
                if age is None or age > self.ttl:
                    return None
            return entry["value"]
            """,
            before="import math",
        ),
        True,
    ),
    Submission(
        "disk_cache",
        "a match statement, and get with early returns",
        _disk(
            """
            match entry.get("created"):
                case bool():
                    return None
                case int() | float() as created if 0 <= created <= now:
                    return now - created
                case _:
                    return None
            """,
            """
            entry = wbc.read_json_entry(self.path_for(key))
            if entry is None or "value" not in entry:
                return None
            if self.ttl is None:
                return entry["value"]
            age = entry_age(entry, self.clock())
            if age is None or age > self.ttl:
                return None
            return entry["value"]
            """,
        ),
        True,
    ),
    Submission(
        "disk_cache",
        "a student trial: isinstance + bool test, chained comparison, get step by step",
        _disk(
            """
            created = entry.get("created")
            if isinstance(created, bool) or not isinstance(created, (int, float)):
                return None
            if not 0 <= created <= now:  # NaN, infinities, the future, huge ints all fail this
                return None
            return now - created
            """,
            """
            entry = wbc.read_json_entry(self.path_for(key))
            if entry is None or "value" not in entry:
                return None
            if self.ttl is not None:
                age = entry_age(entry, self.clock())
                if age is None or age > self.ttl:
                    return None
            return entry["value"]
            """,
        ),
        True,
    ),
]

DISK_WRONG = [
    Submission(
        "disk_cache",
        "age: any number has an age (NaN, infinity and the future served forever)",
        _disk(
            """
            created = entry.get("created")
            return now - created if isinstance(created, int | float) else None
            """
        ),
        False,
    ),
    Submission(
        "disk_cache",
        "age: math.isfinite on a huge int raises OverflowError",
        _disk(
            """
            created = entry.get("created")
            if isinstance(created, bool) or not isinstance(created, int | float):
                return None
            if not math.isfinite(created) or not 0 <= created <= now:
                return None
            return now - created
            """,
            before="import math",
        ),
        False,
    ),
    Submission(
        "disk_cache",
        "age: True counts as the number 1",
        _disk(
            """
            created = entry.get("created")
            usable = isinstance(created, int | float) and 0 <= created <= now
            return now - created if usable else None
            """
        ),
        False,
    ),
    Submission(
        "disk_cache",
        "age: a timestamp in the future gives a negative age",
        _disk(
            """
            created = entry.get("created")
            usable = type(created) in (int, float) and 0 <= created < float("inf")
            return now - created if usable else None
            """
        ),
        False,
    ),
    Submission(
        "disk_cache",
        "age: a timestamp before 1970 has an age",
        _disk(
            """
            created = entry.get("created")
            if type(created) not in (int, float) or abs(created) > 1e300:
                return None
            return now - created if created <= now else None
            """
        ),
        False,
    ),
    Submission(
        "disk_cache",
        "get: stale at exactly the TTL",
        _disk(
            get="""
            entry = wbc.read_json_entry(self.path_for(key)) or {}
            age = entry_age(entry, self.clock())
            expired = self.ttl is not None and (age is None or age >= self.ttl)
            return None if expired else entry.get("value")
            """
        ),
        False,
    ),
    Submission(
        "disk_cache",
        "get: the TTL is never checked",
        _disk(get='return (wbc.read_json_entry(self.path_for(key)) or {}).get("value")'),
        False,
    ),
    Submission(
        "disk_cache",
        "get: time.time() instead of self.clock()",
        _disk(
            get="""
            entry = wbc.read_json_entry(self.path_for(key)) or {}
            age = entry_age(entry, time.time())
            expired = self.ttl is not None and (age is None or age > self.ttl)
            return None if expired else entry.get("value")
            """
        ),
        False,
    ),
    Submission(
        "disk_cache",
        "get: a damaged timestamp is a miss even without a TTL",
        _disk(
            get="""
            entry = wbc.read_json_entry(self.path_for(key)) or {}
            age = entry_age(entry, self.clock())
            if age is None or (self.ttl is not None and age > self.ttl):
                return None
            return entry.get("value")
            """
        ),
        False,
    ),
    Submission(
        "disk_cache",
        "get: a damaged file crashes (json.loads unguarded)",
        _disk(
            get="""
            path = self.path_for(key)
            if not path.exists():
                return None
            entry = json.loads(path.read_text())
            age = entry_age(entry, self.clock())
            expired = self.ttl is not None and (age is None or age > self.ttl)
            return None if expired else entry.get("value")
            """
        ),
        False,
    ),
    Submission(
        "disk_cache",
        "get: an entry without a value raises KeyError",
        _disk(
            get="""
            entry = wbc.read_json_entry(self.path_for(key))
            if entry is None:
                return None
            age = entry_age(entry, self.clock())
            expired = self.ttl is not None and (age is None or age > self.ttl)
            return None if expired else entry["value"]
            """
        ),
        False,
    ),
    Submission(
        "disk_cache",
        "get: returns the whole entry, not its value",
        _disk(
            get="""
            entry = wbc.read_json_entry(self.path_for(key))
            if entry is None or "value" not in entry:
                return None
            age = entry_age(entry, self.clock())
            expired = self.ttl is not None and (age is None or age > self.ttl)
            return None if expired else entry
            """
        ),
        False,
    ),
    Submission(
        "disk_cache",
        "age: numeric text ('0', '1e3') converted with float() has an age",
        _disk(
            """
            created = entry.get("created")
            if isinstance(created, bool):
                return None
            try:
                created = float(created)
            except (TypeError, ValueError, OverflowError):  # None, 'yesterday', a huge int
                return None
            return now - created if 0 <= created <= now else None
            """
        ),
        False,
    ),
]


# -- Task 3: CachedPredict.hit_rate and forward -------------------------------------------------
_RATE = "return self.hits / max(self.hits + self.misses, 1)"
_FORWARD = """
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
    warnings.warn(f"the answer was not cached ({exc})")
return prediction
"""


def _module(rate: str = _RATE, forward: str = _FORWARD) -> str:
    return _cell("cached_module", rate, forward)


def _forward_with(old: str, new: str) -> str:
    if old not in _FORWARD:
        raise ValueError(f"{old!r} is not in the master-style forward")
    return _module(forward=_FORWARD.replace(old, new))


MODULE_RIGHT = [
    Submission(
        "cached_module",
        "hit_rate kept as an attribute, a helper that stores, any Exception caught",
        '''
        class CachedPredict(dspy.Module):
            """`dspy.Predict` behind a cache."""

            def __init__(self, signature="question -> answer", *, cache):
                super().__init__()
                self.predict = dspy.Predict(signature, cache=False)
                self.cache = cache
                self.hits = self.misses = 0
                self.hit_rate = 0.0

            def cache_key(self, inputs):
                lm = wbc.lm_in_use(self.predict)
                program = wbc.describe_program(self.predict)
                return make_cache_key(
                    inputs, signature=program, model=lm.model, lm_settings=lm.kwargs
                )

            def encode(self, prediction):
                return wbc.encode_outputs(self.predict.signature, prediction)

            def decode(self, stored):
                return wbc.decode_outputs(self.predict.signature, stored)

            def _count(self, hit):
                if hit:
                    self.hits += 1
                else:
                    self.misses += 1
                self.hit_rate = self.hits / (self.hits + self.misses)

            def _store(self, key, prediction):
                try:
                    self.cache.put(key, self.encode(prediction))
                except Exception as exc:
                    warnings.warn(f"not cached: {exc!r}", RuntimeWarning, stacklevel=3)

            def forward(self, **inputs):
                key = self.cache_key(inputs)
                stored = self.cache.get(key)
                cached = None if stored is None else self.decode(stored)
                self._count(cached is not None)
                if cached is not None:
                    return cached
                prediction = self.predict(**inputs)
                self._store(key, prediction)
                return prediction
        ''',
        True,
    ),
    Submission(
        "cached_module",
        "an if/else with one return, encode before the try, errors caught separately",
        _module(
            """
            calls = self.hits + self.misses
            if calls == 0:
                return 0.0
            return self.hits / calls
            """,
            """
            key = self.cache_key(inputs)
            answer = self.decode(self.cache.get(key))
            if answer is None:
                self.misses += 1
                answer = self.predict(**inputs)
                try:
                    encoded = self.encode(answer)
                except (TypeError, ValueError) as exc:
                    warnings.warn(f"cannot store this answer: {exc}")
                else:
                    try:
                        self.cache.put(key, encoded)
                    except (OSError, TypeError, ValueError) as exc:
                        warnings.warn(f"the cache could not be written: {exc}")
            else:
                self.hits += 1
            return answer
            """,
        ),
        True,
    ),
]

MODULE_WRONG = [
    Submission(
        "cached_module",
        "hit_rate: ZeroDivisionError before the first call",
        _module(rate="return self.hits / (self.hits + self.misses)"),
        False,
    ),
    Submission(
        "cached_module",
        "hit_rate: a percentage",
        _module(rate="return 100 * self.hits / max(self.hits + self.misses, 1)"),
        False,
    ),
    Submission(
        "cached_module",
        "hit: the LM is called anyway",
        _module(
            forward="""
            key = self.cache_key(inputs)
            prediction = self.predict(**inputs)
            cached = self.decode(self.cache.get(key))
            if cached is not None:
                self.hits += 1
                return cached
            self.misses += 1
            try:
                self.cache.put(key, self.encode(prediction))
            except (OSError, TypeError, ValueError) as exc:
                warnings.warn(f"the answer was not cached ({exc})")
            return prediction
            """
        ),
        False,
    ),
    Submission(
        "cached_module",
        "hit: the stored JSON served as it is (a date comes back as a string)",
        _forward_with(
            "cached = self.decode(self.cache.get(key))",
            "stored = self.cache.get(key)\n"
            "cached = dspy.Prediction(**stored) if self.decode(stored) is not None else None",
        ),
        False,
    ),
    Submission(
        "cached_module",
        "hit: an entry decode rejects is served (as None)",
        _forward_with(
            """cached = self.decode(self.cache.get(key))
if cached is not None:
    self.hits += 1
    return cached""",
            """stored = self.cache.get(key)
if stored is not None:
    self.hits += 1
    return self.decode(stored)""",
        ),
        False,
    ),
    Submission(
        "cached_module",
        "miss: the answer is never stored",
        _forward_with("self.cache.put(key, self.encode(prediction))", "self.encode(prediction)"),
        False,
    ),
    Submission(
        "cached_module",
        "miss: the Prediction object stored instead of encode(prediction)",
        _forward_with(
            "self.cache.put(key, self.encode(prediction))", "self.cache.put(key, prediction)"
        ),
        False,
    ),
    Submission(
        "cached_module",
        "key: built from the inputs here instead of self.cache_key",
        _forward_with("key = self.cache_key(inputs)", "key = repr(sorted(inputs.items()))"),
        False,
    ),
    Submission(
        "cached_module",
        "counters: every call counted as a miss",
        _forward_with("    self.hits += 1\n", "    self.misses += 1\n"),
        False,
    ),
    Submission(
        "cached_module",
        "failing cache: an error from put loses the answer",
        _forward_with(
            """try:
    self.cache.put(key, self.encode(prediction))
except (OSError, TypeError, ValueError) as exc:
    warnings.warn(f"the answer was not cached ({exc})")""",
            "self.cache.put(key, self.encode(prediction))",
        ),
        False,
    ),
    Submission(
        "cached_module",
        "failing cache: the error is swallowed silently",
        _forward_with('    warnings.warn(f"the answer was not cached ({exc})")', "    pass"),
        False,
    ),
    Submission(
        "cached_module",
        "failing cache: only OSError caught",
        _forward_with("except (OSError, TypeError, ValueError) as exc:", "except OSError as exc:"),
        False,
    ),
    Submission(
        "cached_module",
        "failing cache: encode outside the try",
        _forward_with(
            """try:
    self.cache.put(key, self.encode(prediction))""",
            """encoded = self.encode(prediction)
try:
    self.cache.put(key, encoded)""",
        ),
        False,
    ),
    Submission(
        "cached_module",
        "failing cache: put's TypeError not caught (encode's is)",
        _module(
            forward="""
            key = self.cache_key(inputs)
            cached = self.decode(self.cache.get(key))
            if cached is not None:
                self.hits += 1
                return cached
            self.misses += 1
            prediction = self.predict(**inputs)
            try:
                encoded = self.encode(prediction)
            except (TypeError, ValueError) as exc:
                warnings.warn(f"cannot encode this answer: {exc}")
                return prediction
            try:
                self.cache.put(key, encoded)
            except (OSError, ValueError) as exc:
                warnings.warn(f"the cache could not be written: {exc}")
            return prediction
            """
        ),
        False,
    ),
    Submission(
        "cached_module",
        "failing cache: print() instead of warnings.warn",
        _forward_with(
            'warnings.warn(f"the answer was not cached ({exc})")',
            'print(f"the answer was not cached ({exc})")',
        ),
        False,
    ),
    Submission(
        "cached_module",
        "miss: prediction.toDict() stored instead of encode(prediction) (encode never called)",
        _forward_with(
            "self.cache.put(key, self.encode(prediction))",
            "self.cache.put(key, prediction.toDict())",
        ),
        False,
    ),
]

SUBMISSIONS = KEY_RIGHT + KEY_WRONG + DISK_RIGHT + DISK_WRONG + MODULE_RIGHT + MODULE_WRONG


# -- Going further: the similarity cache (a self-check, no graded cell, no points) ---------------
# `tests/test_ex1_caching.py` runs these through `ex1.check_similar_cache` only.
_NORMALIZE = """
text = text.casefold().replace("n't", " not").replace("n\u2019t", " not")
return " ".join(re.findall(r"[^\\W_]+|[-+*/^=<>%]", text))
"""
_GET_BEST = """
best_score, best_answer = 0.0, None
for stored, answer in self.entries.items():
    score = question_similarity(question, stored)
    if score > best_score:
        best_score, best_answer = score, answer
return best_answer if best_score >= self.threshold else None
"""

OPTIONAL = [
    Submission(
        "similar_cache",
        "[a-z0-9]+ Jaccard, two empty questions identical (the textbook measure)",
        _cell(
            "similar_cache",
            'return " ".join(re.findall(r"[a-z0-9]+", text.lower()))',
            """
            words_a = set(normalize_question(a).split())
            words_b = set(normalize_question(b).split())
            if not words_a and not words_b:
                return 1.0
            return len(words_a & words_b) / len(words_a | words_b)
            """,
            _GET_BEST,
        ),
        False,
    ),
    Submission(
        "similar_cache",
        "Unicode tokens, but order-blind Jaccard",
        _cell(
            "similar_cache",
            _NORMALIZE,
            """
            words_a = set(normalize_question(a).split())
            words_b = set(normalize_question(b).split())
            if not words_a or not words_b:
                return 0.0
            return len(words_a & words_b) / len(words_a | words_b)
            """,
            _GET_BEST,
        ),
        False,
    ),
    Submission(
        "similar_cache",
        "words and pairs, but no number/sign/negation guard",
        _cell(
            "similar_cache",
            _NORMALIZE,
            """
            ta, tb = normalize_question(a).split(), normalize_question(b).split()
            if not ta or not tb:
                return 0.0
            fa = set(ta) | {f"{x} {y}" for x, y in zip(ta, ta[1:], strict=False)}
            fb = set(tb) | {f"{x} {y}" for x, y in zip(tb, tb[1:], strict=False)}
            return len(fa & fb) / len(fa | fb)
            """,
            _GET_BEST,
        ),
        False,
    ),
    Submission(
        "similar_cache",
        "get answers with the first stored question above the threshold, not the best",
        _cell(
            "similar_cache",
            _NORMALIZE,
            _solution_regions("similar_cache")[1],
            """
            for stored, answer in self.entries.items():
                if question_similarity(question, stored) >= self.threshold:
                    return answer
            return None
            """,
        ),
        False,
    ),
]
