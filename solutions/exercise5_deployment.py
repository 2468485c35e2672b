"""Answer key for 05_deployment.ipynb — generated from source/ch07/05_deployment.py by tools/build.py; do not edit.

Run: python solutions/exercise5_deployment.py  (backend: $WORKBOOK_LM, default local)
"""

import asyncio


async def _main() -> None:
    # # Exercise 5 — Deploying a DSPy program as a production service
    import dspy_workbook as wb

    lm = wb.setup()

    import asyncio
    import hmac
    import logging
    import time

    import dspy
    import httpx
    from fastapi import FastAPI, HTTPException
    from fastapi.testclient import TestClient
    from IPython.display import display
    from pydantic import BaseModel, ConfigDict, Field

    from dspy_workbook import serving
    from dspy_workbook.caching import progress
    from dspy_workbook.checks import ex5
    from dspy_workbook.serving import RateDecision, ServiceParts, Settings, create_app

    # The service writes one JSON log line per request to stderr. Quiet here; section 6 looks at them.
    logging.getLogger("dspy_workbook.serving").setLevel(logging.CRITICAL)

    # ## 1. What is wrong with the usual starter
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

    print(
        f"/health answered after {await health_while_predicting(starter):.2f} s with the blocking "
        "call (it waited for the prediction)"
    )
    print(
        f"/health answered after {await health_while_predicting(awaiting):.2f} s with an awaited call"
    )

    # ## 2. The service you will complete
    KEYS = {"alice": "alice-demo-key-1", "bob": "bob-demo-key-2"}  # in production: WORKBOOK_API_KEYS
    settings = Settings(api_keys=KEYS, rate_per_second=5, rate_burst=10)
    print(settings)

    with TestClient(create_app(settings, lm=lm)) as client:
        answer = client.post(
            "/predict",
            json={"question": "What is the capital of France?"},
            headers={"X-API-Key": KEYS["alice"]},
        )
    print(answer.status_code, sorted(answer.json()))

    # ## Task 1 — Validate the request (2 points)
    MAX_QUESTION_CHARS = 2000


    class QuestionRequest(BaseModel):
        """The body of `POST /predict`."""

        model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

        question: str = Field(
            min_length=1,
            max_length=MAX_QUESTION_CHARS,
            description="The question, 1 to 2000 characters (whitespace trimmed).",
            examples=["What is the capital of France?"],
        )

    ex5.check_request_model(QuestionRequest)

    from fastapi.testclient import TestClient

    from dspy_workbook.lm import sim_lm
    from dspy_workbook.serving import ServiceParts, Settings, create_app  # noqa: F811 (tests import afresh)

    _app = create_app(
        Settings(api_keys={"t": "test-key"}, rate_burst=100),
        lm=sim_lm(latency=0.0, cache=False),
        parts=ServiceParts(request_model=QuestionRequest),
    )
    with TestClient(_app) as _c:
        _h = {"X-API-Key": "test-key"}
        _ok = _c.post("/predict", json={"question": " Why is the sky blue? "}, headers=_h)
        assert _ok.status_code == 200, _ok.text
        assert _ok.json()["question"] == "Why is the sky blue?"
        for _body in ({"question": ""}, {"question": "  "}, {"question": "x" * 2001}):
            assert _c.post("/predict", json=_body, headers=_h).status_code == 422, _body
        for _body in (
            {"question": 42},
            {"question": None},
            {"question": ["a"]},
            {},
            {"question": "ok", "extra": 1},
            {"Question": "case matters"},
        ):
            assert _c.post("/predict", json=_body, headers=_h).status_code == 422, _body
        assert _c.post("/predict", json={"question": "y" * 2000}, headers=_h).status_code == 200
        assert _c.post("/predict", json={"question": "\n a \t"}, headers=_h).json()["question"] == "a"
        _schema = _app.openapi()["components"]["schemas"]["QuestionRequest"]
        assert _schema["additionalProperties"] is False
        assert _schema["properties"]["question"]["maxLength"] == 2000

    # ## Task 2 — Authenticate with API keys (2 points)
    def check_api_key(presented: str | None, keys: dict[str, str]) -> str:
        """The client name for `presented`, or `HTTPException(401)`; constant-time, never echoes."""
        refuse = HTTPException(
            status_code=401,
            detail="missing or invalid API key (X-API-Key header)",
            headers={"WWW-Authenticate": "ApiKey"},
        )
        if not presented:
            raise refuse
        given = presented.encode()
        found = None
        for name, key in keys.items():
            if hmac.compare_digest(given, key.encode()) and found is None:
                found = name
        if found is None:
            raise refuse
        return found

    ex5.check_api_key_task(check_api_key)

    from fastapi import HTTPException  # noqa: F811 (tests import afresh)
    from fastapi.testclient import TestClient

    from dspy_workbook.lm import sim_lm
    from dspy_workbook.serving import ServiceParts, Settings, create_app

    _keys = {"ann": "ann-key-abcdef", "ben": "ben-key-123456"}
    assert check_api_key("ben-key-123456", _keys) == "ben"
    for _bad in (None, "", "ben-key-12345", "nope"):
        try:
            check_api_key(_bad, _keys)
        except HTTPException as _exc:
            assert _exc.status_code == 401
        else:
            raise AssertionError(f"{_bad!r} was accepted")
    # Types first: an object whose `==` always answers True must not pass the comparisons below.
    assert type(check_api_key("ann-key-abcdef", _keys)) is str
    assert check_api_key("ann-key-abcdef", _keys) == "ann"
    try:
        check_api_key("ann-key-abcdeX", _keys)
    except HTTPException as _exc:
        assert _exc.status_code == 401 and "ann-key-abcdeX" not in str(_exc.detail)
    else:
        raise AssertionError("a near miss was accepted")
    _app = create_app(
        Settings(api_keys=_keys, rate_burst=100),
        lm=sim_lm(latency=0.0, cache=False),
        parts=ServiceParts(check_api_key=check_api_key),
    )
    with TestClient(_app) as _c:
        _r = [
            _c.post("/predict", json={"question": "q"}, headers=_h)
            for _h in ({"X-API-Key": "ann-key-abcdef"}, {}, {"X-API-Key": "ann-key-abcdeX"})
        ]
    assert [r.status_code for r in _r] == [200, 401, 401]
    assert "ann-key-abcdeX" not in _r[2].text

    # ## Task 3 — Rate-limit each key (2 points)
    print(RateDecision.__doc__)
    print(RateDecision(allowed=False, limit=10, remaining=0, retry_after=0.2, reset=2.0))

    class KeyedTokenBucket:
        """A token bucket per key that refuses instead of waiting."""

        def __init__(self, rate: float, burst: int) -> None:
            if rate <= 0 or burst < 1:
                raise ValueError(f"need rate > 0 and burst >= 1, got rate={rate}, burst={burst}")
            self.rate, self.burst = float(rate), int(burst)
            self.buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, time of last update)

        async def acquire(self, key: str) -> RateDecision:
            """Take a token for `key` if there is one; never wait."""
            now = time.monotonic()
            tokens, updated = self.buckets.get(key, (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - updated) * self.rate)
            allowed = tokens >= 1
            if allowed:
                tokens -= 1
            self.buckets[key] = (tokens, now)
            return RateDecision(
                allowed=allowed,
                limit=self.burst,
                remaining=int(tokens),
                retry_after=0.0 if tokens >= 1 else (1 - tokens) / self.rate,
                reset=(self.burst - tokens) / self.rate,
            )

    ex5.check_rate_limiter(KeyedTokenBucket)

    import time  # noqa: F811 (tests import afresh)

    from fastapi.testclient import TestClient

    from dspy_workbook.lm import sim_lm
    from dspy_workbook.serving import ServiceParts, Settings, create_app

    _keys = {"ann": "ann-key", "ben": "ben-key"}
    _app = create_app(
        Settings(api_keys=_keys),
        lm=sim_lm(latency=0.0, cache=False),
        parts=ServiceParts(limiter=KeyedTokenBucket(rate=0.5, burst=3)),
    )
    with TestClient(_app) as _c:
        _r = [
            _c.post("/predict", json={"question": f"q{i}"}, headers={"X-API-Key": "ann-key"})
            for i in range(5)
        ]
        _other = _c.post("/predict", json={"question": "b"}, headers={"X-API-Key": "ben-key"})
    assert [r.status_code for r in _r] == [200, 200, 200, 429, 429]
    assert int(_r[3].headers["Retry-After"]) >= 1
    assert _other.status_code == 200
    assert [r.headers["X-RateLimit-Remaining"] for r in _r] == ["2", "1", "0", "0", "0"]
    assert all(r.headers["X-RateLimit-Limit"] == "3" for r in _r)
    _b = KeyedTokenBucket(rate=10, burst=2)


    async def _take(n, key="k"):
        return [await _b.acquire(key) for _ in range(n)]


    _d = await _take(3)
    assert [d.allowed for d in _d] == [True, True, False]
    assert 0.05 < _d[2].retry_after <= 0.1 + 1e-6 and _d[0].retry_after == 0.0
    assert abs(_d[1].reset - 0.2) < 0.02
    time.sleep(0.12)
    assert (await _take(1))[0].allowed
    time.sleep(0.5)
    assert [d.allowed for d in await _take(3)] == [True, True, False]  # never above the burst

    # ## Task 4 — Fail in a way the client can act on (2 points)
    def classify_error(exc: BaseException) -> tuple[int, str]:
        """(HTTP status, error type) for an exception raised while answering."""
        if isinstance(exc, (TimeoutError, dspy.LMTimeoutError)):
            return 504, "lm_timeout"
        if isinstance(exc, dspy.DSPyError):
            return 503, "lm_unavailable"
        return 500, "internal_error"

    ex5.check_error_mapping(classify_error)

    import dspy  # noqa: F811 (tests import afresh)
    from fastapi.testclient import TestClient

    from dspy_workbook.lm import sim_lm
    from dspy_workbook.serving import ServiceParts, Settings, create_app

    assert tuple(classify_error(TimeoutError())) == (504, "lm_timeout")
    assert tuple(classify_error(dspy.LMServerError("down"))) == (503, "lm_unavailable")
    assert tuple(classify_error(ValueError("bug"))) == (500, "internal_error")
    assert tuple(classify_error(dspy.LMTimeoutError("slow"))) == (504, "lm_timeout")
    assert tuple(classify_error(dspy.LMRateLimitError("busy"))) == (503, "lm_unavailable")
    assert tuple(classify_error(dspy.LMUnexpectedError("odd"))) == (503, "lm_unavailable")
    assert tuple(classify_error(KeyError("k"))) == (500, "internal_error")
    _parts = ServiceParts(classify_error=classify_error)
    _s = Settings(api_keys={"t": "k"}, rate_burst=100, lm_timeout=0.2)
    for _lm, _status, _type in (
        (sim_lm(latency=0.0, error_rate=1.0, num_retries=0, cache=False), 503, "lm_unavailable"),
        (sim_lm(latency=2.0, cache=False), 504, "lm_timeout"),
    ):
        with TestClient(create_app(_s, lm=_lm, parts=_parts), raise_server_exceptions=False) as _c:
            _r = _c.post("/predict", json={"question": "q"}, headers={"X-API-Key": "k"})
        assert _r.status_code == _status, (_r.status_code, _r.text)
        assert _r.json()["error"]["type"] == _type
        assert _r.json()["error"]["request_id"] == _r.headers["X-Request-ID"]
        assert "Traceback" not in _r.text

    # ## 5. Your service, assembled — and a confidence that means something
    def my_service(settings: Settings) -> FastAPI:
        """The real app with your four parts (and a fresh limiter of your own for `settings`)."""
        parts = ServiceParts(
            request_model=QuestionRequest,
            check_api_key=check_api_key,
            classify_error=classify_error,
            limiter=KeyedTokenBucket(settings.rate_per_second, settings.rate_burst),
        )
        return create_app(settings, lm=lm, parts=parts)


    app = my_service(settings)

    with TestClient(app) as client:
        for question in ("What is the capital of France?", "What will the weather be on 3 May 2091?"):
            body = client.post(
                "/predict", json={"question": question}, headers={"X-API-Key": KEYS["bob"]}
            ).json()
            print(
                f"{body['confidence']:.2f} ({body['confidence_method']})  {question} -> "
                f"{body['answer'][:60]!r}"
            )

    schema = app.openapi()
    print("security scheme:", schema["components"]["securitySchemes"])
    print("POST /predict answers:", sorted(schema["paths"]["/predict"]["post"]["responses"]))
    print(
        "question:",
        {
            k: v
            for k, v in schema["components"]["schemas"]["QuestionRequest"]["properties"][
                "question"
            ].items()
            if k in ("type", "minLength", "maxLength")
        },
    )

    # ## 6. Run it: a real HTTP server on this machine
    served = my_service(settings.with_(rate_per_second=0.2, rate_burst=5))
    server = serving.start_background(served, host="127.0.0.1", port=8000, name="exercise5")
    BASE = server.url
    print(f"Running API server accessible at {BASE}")
    if server.port != 8000:
        print("(port 8000 was busy, so the server took the next free port)")
    print(httpx.get(f"{BASE}/health").json(), httpx.get(f"{BASE}/ready").json())

    alice, bob = {"X-API-Key": KEYS["alice"]}, {"X-API-Key": KEYS["bob"]}
    with httpx.Client(base_url=BASE, timeout=30) as http:
        ok = http.post("/predict", json={"question": "What is DSPy?"}, headers=alice)
        no_key = http.post("/predict", json={"question": "What is DSPy?"})
        blank = http.post("/predict", json={"question": "   "}, headers=alice)
        burst = [
            http.post("/predict", json={"question": "Burst?"}, headers=bob).status_code
            for _ in range(8)
        ]
        alice_after = http.post("/predict", json={"question": "What is DSPy?"}, headers=alice)

    print(
        "success:      ",
        ok.status_code,
        "cached" if ok.json()["cached"] else "fresh",
        "| remaining",
        ok.headers["X-RateLimit-Remaining"],
    )
    print("no key:       ", no_key.status_code, no_key.json()["error"]["message"])
    print("blank:        ", blank.status_code, blank.json()["error"]["message"])
    print("bob's burst:  ", burst)
    print("alice after:  ", alice_after.status_code, "(another key is unaffected)")

    with httpx.Client(base_url=BASE, timeout=30) as http:
        refused = http.post("/predict", json={"question": "One more?"}, headers=bob)
    print(refused.status_code, refused.json())
    print({k: v for k, v in refused.headers.items() if k.lower().startswith(("retry", "x-rate"))})

    with serving.logs.capture_logs() as entries, httpx.Client(base_url=BASE, timeout=30) as http:
        http.post("/predict", json={"question": "What is DSPy?"}, headers=alice)
        http.post("/predict", json={"question": "What is DSPy?"}, headers={"X-API-Key": "guess"})
        http.get("/health")
    for entry in entries:
        print(
            {
                k: entry.get(k)
                for k in ("request_id", "method", "path", "status", "latency_ms", "client")
            }
        )

    metrics_text = httpx.get(f"{BASE}/metrics").text
    for line in metrics_text.splitlines():
        if line.startswith(("dspy_api_requests_total", "dspy_api_cache_", "dspy_api_errors_total")):
            print(line)

    # ## 7. A small load test
    load_settings = settings.with_(rate_per_second=10_000, rate_burst=10_000)
    server = serving.start_background(
        my_service(load_settings), host="127.0.0.1", port=8000, name="exercise5"
    )
    print(f"Running API server accessible at {server.url}")


    async def load_test(url: str, questions: list[str], repeats: int, concurrency: int) -> list[dict]:
        """Send every question `repeats` times with `concurrency` clients; record each outcome."""
        work = [q for _ in range(repeats) for q in questions]
        limit = asyncio.Semaphore(concurrency)

        async def one(http: httpx.AsyncClient, question: str) -> dict:
            async with limit:
                started = time.perf_counter()
                response = await http.post("/predict", json={"question": question}, headers=alice)
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

    from dspy_workbook.stats import summary_table  # noqa: E402

    hits = [r["seconds"] for r in results if r["status"] == 200 and r["cached"]]
    misses = [r["seconds"] for r in results if r["status"] == 200 and not r["cached"]]
    print(
        f"{len(results)} requests in {elapsed:.2f} s = {len(results) / elapsed:.0f} requests/s; "
        f"statuses {sorted({r['status'] for r in results})}"
    )
    table = summary_table({"cache hit": hits, "cache miss": misses})
    display(table[["count", "p50 ms", "p95 ms", "p99 ms"]].round(2))

    import matplotlib.pyplot as plt  # noqa: E402

    fig, ax = plt.subplots(figsize=(6, 3))
    width = 0.38
    for offset, (name, row) in zip((-width / 2, width / 2), table.iterrows(), strict=True):
        values = [row["p50 ms"], row["p95 ms"], row["p99 ms"]]
        ax.bar([i + offset for i in range(3)], values, width, label=f"{name} (n={int(row['count'])})")
    ax.set_xticks(range(3), ["p50", "p95", "p99"])
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_yscale("log")
    ax.set_title("/predict over HTTP, 4 concurrent clients")
    ax.legend()
    fig.tight_layout()
    plt.show()

    server.stop()
    print("server running:", server.running)

    # ## Going further (optional, ungraded)
    # ### More than one process: Redis for the limiter and the cache
    # ### A container
    # ### AWS Lambda, Cloud Run, Cloud Functions
    from dspy_workbook.serving.lambda_handler import make_handler  # noqa: E402
    from dspy_workbook.threads import run_with_timeout  # noqa: E402

    handler = make_handler(settings, lm=lm)
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

    # ## Check everything, then submit
    ex5.check_all()

    # ## Questionnaire
    # ## Further research


asyncio.run(_main())
