"""Answer key for 05_deployment.ipynb — generated from source/ch07/05_deployment.py by tools/build.py; do not edit.

Run: python solutions/exercise5_deployment.py  (backend: $WORKBOOK_LM, default local)
"""

import asyncio


async def _main() -> None:
    # # Exercise 5 — Deploying a DSPy program as a production service
    import dspy_workbook as wb

    lm = wb.setup()

    import hmac
    import logging
    import time

    import dspy
    import httpx
    from fastapi import FastAPI, HTTPException
    from fastapi.testclient import TestClient
    from pydantic import BaseModel, ConfigDict, Field

    from dspy_workbook import serving
    from dspy_workbook.checks import ex5
    from dspy_workbook.serving import RateDecision, ServiceParts, Settings, create_app

    # The service logs a JSON line per request to stderr: quiet here (section 6 shows them).
    logging.getLogger("dspy_workbook.serving").setLevel(logging.CRITICAL)

    # ## 1. What is wrong with the usual starter
    # ## 2. The service you complete
    # ## Task 1 — Validate the request (2 points)
    def question_model(max_chars: int) -> type[BaseModel]:
        """The model of `POST /predict`'s body, for questions of at most `max_chars` characters."""

        class QuestionRequest(BaseModel):
            model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
            question: str = Field(min_length=1, max_length=max_chars, examples=["What is DSPy?"])

        return QuestionRequest

    ex5.check_request_model(question_model)

    from fastapi.testclient import TestClient  # noqa: F811 (tests import afresh)

    from dspy_workbook.lm import sim_lm
    from dspy_workbook.serving import Settings, create_app, standin_parts  # noqa: F811


    def _ask(max_chars: int, *bodies: object) -> list:
        """POST each body to a service with your model (and stand-ins for the other parts)."""
        parts = standin_parts(request_model=question_model)
        app = create_app(
            Settings(api_keys={"t": "k"}, max_question_chars=max_chars),
            parts=parts,
            lm=sim_lm(latency=0.0, cache=False),
        )
        with TestClient(app, raise_server_exceptions=False) as client:
            return [client.post("/predict", json=b, headers={"X-API-Key": "k"}) for b in bodies]


    _ok, _blank = _ask(2000, {"question": " Why is the sky blue? "}, {"question": "  "})
    assert _ok.status_code == 200, f"a valid question got {_ok.status_code}: {_ok.text[:200]}"
    assert _ok.json()["question"] == "Why is the sky blue?", f"came back as {_ok.json()['question']!r}"
    assert _blank.status_code == 422, f"a blank question got {_blank.status_code}, not 422"
    _cases = {
        "a question of exactly 40 characters": ({"question": "x" * 40}, 200),
        "40 characters inside spaces": ({"question": "  " + "x" * 40 + "\n"}, 200),
        "a question of 41 characters": ({"question": "x" * 41}, 422),
        "an empty question": ({"question": ""}, 422),
        "tabs and newlines only": ({"question": "\t\n "}, 422),
        "the number 42": ({"question": 42}, 422),
        "null": ({"question": None}, 422),
        "a list": ({"question": ["a"]}, 422),
        "an empty body": ({}, 422),
        "an unknown extra field": ({"question": "ok", "extra": 1}, 422),
        "`Question` spelt with a capital": ({"Question": "case matters"}, 422),
    }
    for (_what, (_body, _want)), _r in zip(
        _cases.items(), _ask(40, *(b for b, _ in _cases.values())), strict=True
    ):
        assert _r.status_code == _want, f"with max_chars=40, {_what} got {_r.status_code}, not {_want}"
    _r = _ask(40, {"question": "\n a \t"})[0]
    assert _r.status_code == 200 and _r.json()["question"] == "a", (
        f"'\\n a \\t' should be answered as 'a': got {_r.status_code} {_r.text[:120]}"
    )
    _edge, _over = _ask(2000, {"question": "y" * 2000}, {"question": "y" * 2001})
    assert (_edge.status_code, _over.status_code) == (200, 422), (
        f"with max_chars=2000, 2000 and 2001 characters got {_edge.status_code} and "
        f"{_over.status_code}, not 200 and 422"
    )

    # ## Task 2 — Check API keys in constant time (3 points)
    def check_api_key(presented: str | None, keys: dict[str, str], compare=hmac.compare_digest) -> str:
        """The name of the client whose key is `presented`; `refuse` (401) otherwise."""
        refuse = HTTPException(401, "missing or invalid API key", {"WWW-Authenticate": "ApiKey"})
        given, found = (presented or "").encode(), None
        for name, key in keys.items():
            if compare(given, key.encode()) and found is None:
                found = name
        if not presented or found is None:
            raise refuse
        return found

    ex5.check_api_key_task(check_api_key)

    import hmac  # noqa: F811 (tests import afresh)

    from fastapi import HTTPException  # noqa: F811
    from fastapi.testclient import TestClient  # noqa: F811

    from dspy_workbook.lm import sim_lm  # noqa: F811
    from dspy_workbook.serving import Settings, create_app, standin_parts  # noqa: F811

    _keys = {"ann": "ann-key-abcdef", "ben": "ben-key-123456", "cy": "cy-key-987654"}
    _name = check_api_key("ben-key-123456", _keys)
    assert type(_name) is str and _name == "ben", f"ben's key returned {_name!r}, not 'ben'"
    try:
        check_api_key("ben-key-12345", _keys)
    except HTTPException as _exc:
        assert _exc.status_code == 401, f"a near miss raised a {_exc.status_code}, not 401"
    else:
        raise AssertionError("a key one character short was accepted")
    for _what, _bad in (
        ("no key (None)", None),
        ("an empty key", ""),
        ("a wrong key", "nope"),
        ("a key with its last character changed", "ann-key-abcdeX"),
        ("a key with a character more", "ann-key-abcdef0"),
        ("a key with non-ASCII characters", "ключ-ann-key"),
    ):
        try:
            _got = check_api_key(_bad, _keys)
        except HTTPException as _exc:
            assert _exc.status_code == 401, f"{_what} raised a {_exc.status_code}, not 401"
            assert not _bad or _bad not in str(_exc.detail), f"the 401 for {_what} repeats the key"
        except Exception as _exc:
            raise AssertionError(f"{_what} raised {type(_exc).__name__}: {_exc}, not the 401") from None
        else:
            raise AssertionError(f"{_what} was accepted (returned {_got!r})")


    def _counting(calls: list):
        def compare(a, b):
            calls.append((type(a), type(b)))
            return hmac.compare_digest(a, b)

        return compare


    for _what, _presented in (("ann's key (the first)", "ann-key-abcdef"), ("a wrong key", "zzz")):
        _calls: list = []
        try:
            _got = check_api_key(_presented, _keys, compare=_counting(_calls))
        except HTTPException:
            _got = None
        except Exception as _exc:
            raise AssertionError(f"for {_what} with a counting `compare`: {_exc!r}") from None
        assert _got == ("ann" if _what.startswith("ann") else None), f"{_what} gave {_got!r}"
        assert len(_calls) >= len(_keys), (
            f"for {_what}, `compare` was called {len(_calls)} time(s) with {len(_keys)} keys "
            "configured: call the `compare` you are given (not `==`, nor `hmac.compare_digest` by "
            "name: the tests count calls to `compare`), once for every key, even after a match"
        )
        assert all(t == (bytes, bytes) for t in _calls), (
            f"`compare` got {sorted({f'{a.__name__}, {b.__name__}' for a, b in _calls})}: "
            "encode both sides to bytes"
        )
    _app = create_app(
        Settings(api_keys=_keys),
        lm=sim_lm(latency=0.0, cache=False),
        parts=standin_parts(check_api_key=check_api_key),
    )
    with TestClient(_app, raise_server_exceptions=False) as _c:
        _headers = (
            {"X-API-Key": "cy-key-987654"},
            {},
            {"X-API-Key": "ann-key-abcdeX"},
            {"X-API-Key": "clé-ключ".encode()},
        )
        _r = [_c.post("/predict", json={"question": "q"}, headers=_h) for _h in _headers]
    _statuses = [r.status_code for r in _r]
    assert _statuses == [200, 401, 401, 401], (
        f"through the app, right / no / wrong / non-ASCII key gave {_statuses}, "
        "not [200, 401, 401, 401]"
    )
    assert "ann-key-abcdeX" not in _r[2].text, "the 401's body repeats the wrong key"

    # ## Task 3 — Rate-limit each key, and refuse (3 points)
    class KeyedTokenBucket:
        """One token bucket per key; `acquire` refuses instead of waiting."""

        def __init__(self, rate: float, burst: int, clock=time.monotonic) -> None:
            self.rate, self.burst, self.clock = float(rate), int(burst), clock
            self.buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, time of last update)

        def acquire(self, key: str) -> RateDecision:
            """Take a token from `key`'s bucket if there is a whole one; never wait."""
            now = self.clock()
            tokens, updated = self.buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - updated) * self.rate)
            allowed = tokens >= 1
            if allowed:
                tokens -= 1
            self.buckets[key] = (tokens, now)
            retry_after = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            return RateDecision(
                allowed, self.burst, int(tokens), retry_after, (self.burst - tokens) / self.rate
            )

    ex5.check_rate_limiter(KeyedTokenBucket)

    from fastapi.testclient import TestClient  # noqa: F811 (tests import afresh)

    from dspy_workbook.lm import sim_lm  # noqa: F811
    from dspy_workbook.serving import RateDecision, Settings, create_app, standin_parts  # noqa: F811

    _now = [100.0]
    _bucket = KeyedTokenBucket(rate=2, burst=3, clock=lambda: _now[0])
    _d = [_bucket.acquire("k") for _ in range(4)]
    assert all(type(d) is RateDecision for d in _d), f"acquire returned {type(_d[0]).__name__}"
    assert [d.allowed for d in _d] == [True, True, True, False], (
        f"burst 3 gave {[d.allowed for d in _d]}"
    )
    _now[0] += 0.5
    assert _bucket.acquire("k").allowed, "no token came back 0.5 s later at 2 tokens/s"
    _rem = [d.remaining for d in _d]
    assert _rem == [2, 1, 0, 0] and all(type(r) is int for r in _rem), (
        f"`remaining` after four quick requests was {_rem}, not the whole numbers [2, 1, 0, 0]"
    )
    assert all(d.limit == 3 for d in _d), f"`limit` was {[d.limit for d in _d]}, not the burst 3"
    assert _d[0].retry_after == 0.0, f"`retry_after` with tokens left was {_d[0].retry_after}, not 0"
    assert abs(_d[2].retry_after - 0.5) < 1e-6, (
        f"after taking the last token at 2/s, `retry_after` was {_d[2].retry_after}, not 0.5 s"
    )
    assert abs(_d[3].retry_after - 0.5) < 1e-6, (
        f"refused with an empty bucket at 2/s, `retry_after` was {_d[3].retry_after}, not 0.5"
    )
    assert abs(_d[0].reset - 0.5) < 1e-6 and abs(_d[2].reset - 1.5) < 1e-6, (
        f"`reset` after 1 and 3 requests was {_d[0].reset} and {_d[2].reset}, not 0.5 and 1.5 "
        "(seconds until full)"
    )
    _now[0] += 0.25
    _half = _bucket.acquire("k")
    assert not _half.allowed and abs(_half.retry_after - 0.25) < 1e-6, (
        f"with half a token, got allowed={_half.allowed}, retry_after={_half.retry_after}; "
        "want a refusal and 0.25 s"
    )
    assert _bucket.acquire("other").remaining == 2, "a new key did not start with a full bucket"
    _now[0] += 1000
    _full = [_bucket.acquire("k") for _ in range(4)]
    assert [d.allowed for d in _full] == [True, True, True, False], (
        f"after a long pause a burst gave {[d.allowed for d in _full]}: never above the burst"
    )
    _now[0] += 0.875  # 1.75 tokens: one is taken, 0.75 of one is left
    _part = _bucket.acquire("k")
    assert _part.allowed and _part.remaining == 0, (
        f"with 1.75 tokens, got allowed={_part.allowed}, remaining={_part.remaining!r}; "
        "want True and 0 (0.75 is not a whole token)"
    )
    _parts = standin_parts(limiter=KeyedTokenBucket)
    _app = create_app(
        Settings(api_keys={"ann": "a", "ben": "b"}, rate_per_second=0.5, rate_burst=3),
        lm=sim_lm(latency=0.0, cache=False),
        parts=_parts,
    )
    with TestClient(_app, raise_server_exceptions=False) as _c:
        _r = [
            _c.post("/predict", json={"question": f"q{i}"}, headers={"X-API-Key": "a"})
            for i in range(5)
        ]
        _other = _c.post("/predict", json={"question": "b"}, headers={"X-API-Key": "b"})
    _statuses = [r.status_code for r in _r]
    assert _statuses == [200, 200, 200, 429, 429], (
        f"a burst of 5 at burst 3 through the app gave {_statuses}"
    )
    _h = [(r.headers.get("X-RateLimit-Remaining"), r.headers.get("X-RateLimit-Reset")) for r in _r]
    assert [h[0] for h in _h] == ["2", "1", "0", "0", "0"], (
        f"X-RateLimit-Remaining was {[h[0] for h in _h]}"
    )
    assert all(h[1] is not None and 0 < int(h[1]) <= 6 for h in _h), (
        f"X-RateLimit-Reset was {[h[1] for h in _h]}: seconds until full, at most 3 / 0.5 = 6"
    )
    assert int(_r[3].headers.get("Retry-After", "0")) >= 1, "the 429 had no Retry-After of >= 1 s"
    assert _other.status_code == 200, f"another key got {_other.status_code} after ann's burst"

    # ## 4. Your service, assembled
    def my_service(settings: Settings, **options) -> FastAPI:
        """The real app, with your three parts (and a fresh limiter of its own)."""
        parts = ServiceParts(
            request_model=question_model, check_api_key=check_api_key, limiter=KeyedTokenBucket
        )
        return create_app(settings, lm=lm, parts=parts, **options)


    KEYS = {"alice": "alice-demo-key-1", "bob": "bob-demo-key-2"}  # really: WORKBOOK_API_KEYS
    ALICE, BOB = {"X-API-Key": KEYS["alice"]}, {"X-API-Key": KEYS["bob"]}
    settings = Settings(api_keys=KEYS, rate_per_second=0.2, rate_burst=5)  # then 1 per 5 s
    print(settings)
    with TestClient(my_service(settings)) as client:
        for question in ("What is the capital of France?", "What will the weather be on 3 May 2091?"):
            response = client.post("/predict", json={"question": question}, headers=BOB)
            body = response.json()
            if response.status_code != 200:  # e.g. 504: a busy model took over settings.lm_timeout
                print(f"{response.status_code} {body['error']['type']:9} {question}")
                continue
            print(
                f"{body['confidence']:.2f} {body['confidence_method']:9} {question} -> {body['answer']!r}"
            )

    # ## 5. Failures a client can act on
    class Fails(dspy.Module):
        """A program that raises `error` instead of answering."""

        def __init__(self, error: Exception) -> None:
            super().__init__()
            self.error = error

        async def aforward(self, **inputs):
            raise self.error


    for error in (
        TimeoutError(),
        dspy.ContextWindowExceededError(model="demo"),
        dspy.LMAuthError("provider rejected our key"),
        dspy.LMRateLimitError("provider busy"),
        KeyError("bug"),
    ):
        with TestClient(my_service(settings, program=Fails(error)), raise_server_exceptions=False) as c:
            reply = c.post("/predict", json={"question": "Why?"}, headers=ALICE)
        print(f"{type(error).__name__:27} -> {reply.status_code} {reply.json()['error']['type']}")

    # ## 6. Run it: a real HTTP server on this machine
    served = my_service(settings)
    server = serving.start_background(served, host="127.0.0.1", port=8000, name="exercise5")
    BASE = server.url
    print(f"Running API server accessible at {BASE}")
    print(httpx.get(f"{BASE}/health").json(), httpx.get(f"{BASE}/ready").json())

    with serving.logs.capture_logs() as entries, httpx.Client(base_url=BASE, timeout=30) as http:
        ok = http.post("/predict", json={"question": "What is DSPy?"}, headers=ALICE)
        no_key = http.post("/predict", json={"question": "What is DSPy?"})
        blank = http.post("/predict", json={"question": "   "}, headers=ALICE)
        burst = [http.post("/predict", json={"question": "Burst?"}, headers=BOB) for _ in range(8)]
        metrics = http.get("/metrics").text
    print("success:", ok.status_code, "| remaining", ok.headers["X-RateLimit-Remaining"])
    print("no key: ", no_key.status_code, no_key.json()["error"]["message"])
    print("blank:  ", blank.status_code, blank.json()["error"]["message"])
    print("burst:  ", [r.status_code for r in burst], "| Retry-After", burst[-1].headers["Retry-After"])
    for entry in entries[:3]:
        print({k: entry.get(k) for k in ("request_id", "path", "status", "latency_ms", "client")})
    print(*[m for m in metrics.splitlines() if m.startswith("dspy_api_requests_total")], sep="\n")

    # ## 7. Ship it as a container
    container_env = {"WORKBOOK_API_KEYS": "ops:key-from-the-environment", "WORKBOOK_RATE_BURST": "3"}
    print(Settings.from_env(container_env))
    with TestClient(my_service(Settings.from_env(container_env))) as container:
        print("HEALTHCHECK:", container.get("/health").status_code, container.get("/health").json())

    # ## Going further (optional, ungraded)
    # ### A small load test
    import asyncio

    from IPython.display import display

    from dspy_workbook.caching import progress
    from dspy_workbook.stats import summary_table

    server = serving.start_background(
        my_service(settings.with_(rate_per_second=10_000, rate_burst=10_000)),
        host="127.0.0.1",
        port=8000,
        name="exercise5",
    )


    async def load_test(url: str, questions: list[str], repeats: int, concurrency: int) -> list[dict]:
        """Send every question `repeats` times with `concurrency` clients; record each outcome."""
        work = [q for _ in range(repeats) for q in questions]
        limit = asyncio.Semaphore(concurrency)

        async def one(http: httpx.AsyncClient, question: str) -> dict:
            async with limit:
                started = time.perf_counter()
                response = await http.post("/predict", json={"question": question}, headers=ALICE)
                seconds = time.perf_counter() - started
            return {
                "status": response.status_code,
                "seconds": seconds,
                "cached": response.status_code == 200 and response.json()["cached"],
            }

        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            tasks = [asyncio.ensure_future(one(http, q)) for q in work]
            return [
                await done
                for done in progress(asyncio.as_completed(tasks), desc="requests", total=len(tasks))
            ]


    questions = [f"Load test question number {i}: what is {i} squared?" for i in range(10)]
    started = time.perf_counter()
    results = await load_test(server.url, questions, repeats=6, concurrency=4)
    elapsed = time.perf_counter() - started
    hits = [r["seconds"] for r in results if r["status"] == 200 and r["cached"]]
    misses = [r["seconds"] for r in results if r["status"] == 200 and not r["cached"]]
    print(
        f"{len(results)} requests in {elapsed:.2f} s = {len(results) / elapsed:.0f} requests/s; "
        f"statuses {sorted({r['status'] for r in results})}"
    )
    table = summary_table({"cache hit": hits, "cache miss": misses})
    display(table[["count", "p50 ms", "p95 ms", "p99 ms"]].round(2))

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    width = 0.38
    for offset, (name, row) in zip((-width / 2, width / 2), table.iterrows(), strict=True):
        values = [row["p50 ms"], row["p95 ms"], row["p99 ms"]]
        ax.bar([i + offset for i in range(3)], values, width, label=f"{name} (n={int(row['count'])})")
    ax.set_xticks(range(3), ["p50", "p95", "p99"])
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_yscale("log")
    ax.set_title("/predict over HTTP, 4 concurrent clients")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # beside, not on, the bars
    fig.tight_layout()
    plt.show()

    server.stop()
    print("server running:", server.running)

    # ### The starter's bugs 2 and 3, live
    starter = FastAPI()


    class StarterQuestion(BaseModel):
        question: str


    @starter.post("/predict")
    async def starter_predict(request: StarterQuestion):
        try:
            if not request.question:
                raise HTTPException(status_code=400, detail="Question required")
            time.sleep(0.5)  # stands in for `program(question=...)`: a blocking wait for the LM
            return {"answer": "...", "confidence": 0.95}
        except Exception:
            raise HTTPException(status_code=500, detail="Prediction failed") from None


    @starter.get("/health")
    async def starter_health():
        return {"status": "healthy"}


    with TestClient(starter) as client:
        empty = client.post("/predict", json={"question": ""})
    print(f"empty question -> {empty.status_code} {empty.json()}  (should be 4xx: the client's fault)")


    async def health_while_predicting(app) -> float:
        """Start a 0.5 s prediction; how long after that does a /health call come back?"""
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://in-process") as c:
            started = time.perf_counter()
            pending = asyncio.create_task(c.post("/predict", json={"question": "slow"}))
            await asyncio.sleep(0.01)
            await c.get("/health")
            answered = time.perf_counter() - started
            await pending
            return answered


    awaiting = FastAPI()


    @awaiting.post("/predict")
    async def awaiting_predict(request: StarterQuestion):
        await asyncio.sleep(0.5)  # stands in for `await program.acall(question=...)`
        return {"answer": "..."}


    awaiting.get("/health")(starter_health)
    blocked = await health_while_predicting(starter)
    print(f"/health answered after {blocked:.2f} s with the blocking call (it waited)")
    print(f"/health answered after {await health_while_predicting(awaiting):.2f} s with an await")

    # ### The API documents itself
    schema = served.openapi()
    print("security scheme:", schema["components"]["securitySchemes"])
    print("POST /predict answers:", sorted(schema["paths"]["/predict"]["post"]["responses"]))

    # ### More than one process: Redis for the limiter and the cache
    # ### What an adversarial review broke, and how the service holds now
    # ### Your own container image
    # ### AWS Lambda, Cloud Run, Cloud Functions
    from dspy_workbook.serving.lambda_handler import make_handler
    from dspy_workbook.threads import run_with_timeout

    my_parts = ServiceParts(
        request_model=question_model, check_api_key=check_api_key, limiter=KeyedTokenBucket
    )
    handler = make_handler(settings, lm=lm, parts=my_parts)
    event = {
        "version": "2.0",
        "routeKey": "GET /health",
        "rawPath": "/health",
        "rawQueryString": "",
        "headers": {"host": "example.execute-api.eu-west-1.amazonaws.com"},
        "requestContext": {
            "http": {
                "method": "GET",
                "path": "/health",
                "sourceIp": "192.0.2.1",
                "protocol": "HTTP/1.1",
                "userAgent": "demo",
            },
            "stage": "$default",
            "requestId": "demo",
            "accountId": "123456789012",
            "apiId": "demo",
            "domainName": "example.execute-api.eu-west-1.amazonaws.com",
        },
        "isBase64Encoded": False,
    }
    # Lambda calls `handler(event, context)` with no event loop running; this kernel has one, so the
    # call goes to a helper thread (`run_with_timeout`), as Lambda's own runtime would make it.
    reply = run_with_timeout(handler, event, None, timeout=30)
    print(reply["statusCode"], reply["body"])

    # ## Check everything
    ex5.check_all()

    # ## How to submit
    # ## Questionnaire
    # ## Further research


asyncio.run(_main())
