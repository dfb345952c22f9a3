"""The raw ASGI fast path answers exactly as the FastAPI routes it stands in front of.

Two apps over one repository and database: `fast`, as create_app builds it, and `routed`,
the same without the fast path in front of it. A table of requests (tokens on and off, every
scope, tokens limited to an environment, If-None-Match matching and not, sticky keys,
unknown prompts and environments, HEAD and other methods, query variations, trailing
slashes) goes to both; status, every header (names, values and order) and body must be
equal, and the fast path must have answered exactly the GETs the route answered with 200
or 304 (and nothing else). The request metrics and the cache's hit and miss counts of
both apps agree afterwards. Then the same over a real socket (uvicorn), and with
OpenTelemetry on, where the router takes every request so that FastAPI's spans name it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from support import serving, wait_until

from promptctl.registry.auth import TokenService
from promptctl.server.app import create_app
from promptctl.server.fastpath import FastPath

TRIAGE = "support/triage"  # the chat prompt of conftest.repo (v1..v3)
SUMMARY = "news/summary"
R = f"/v1/prompts/{TRIAGE}/resolve"
S = f"/v1/prompts/{TRIAGE}/release"
# Tokens by label: scope and the environment it is limited to.
TOKENS = {
    "read": ("read", None),
    "read@staging": ("read", "staging"),
    "read@production": ("read", "production"),
    "metrics": ("metrics:write", None),
    "release@staging": ("release", "staging"),
    "release@production": ("release", "production"),
    "admin": ("admin", None),
}
# One ETag the table sends back: what `R?env=staging&key=u1` answers (filled in per test).
ETAG = "<etag>"
RELEASE_ETAG = "<release-etag>"


@dataclass(frozen=True)
class Ask:
    """One request of the table; `token` names an entry of TOKENS (or a raw header)."""

    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    token: str | None = None
    raw_authorization: tuple[str, ...] = field(default=())


def asks() -> list[Ask]:
    """The table: what varies, each on its own, with every token column for the GETs."""
    urls = [
        f"{R}?env=staging&key=u1",
        f"{R}?key=u1&env=staging",
        f"{R}?env=staging&key=u2&extra=1",
        f"{R}?env=production",
        f"{R}?env=production&key=",
        f"{R}?env=staging&env=production",
        f"{R}?env=production&env=staging&key=u1",
        f"{R}?env=stag%69ng&key=u%31",
        f"{R}?env=staging&key=a+b",
        f"{R}?env=staging&key=a%20b",
        f"{R}?env=staging&key=u1&key=u3",
        f"{R}?env=staging&key=u1&",
        f"{R}?&env=staging&key=u1",
        f"{R}?env&key=u1",
        f"{R}?env=&key=u1",
        f"{R}?key=u1",
        f"{R}",
        f"{R}?env=qa&key=u1",
        f"{R}/?env=staging&key=u1",
        "/v1/prompts/support%2Ftriage/resolve?env=staging&key=u1",
        f"/v1/prompts/{SUMMARY}/resolve?env=production",
        f"/v1/prompts/{SUMMARY}/resolve?env=staging",
        "/v1/prompts/nope/resolve?env=staging",
        "/v1/prompts//resolve?env=staging",
        "/v1/prompts/resolve?env=staging",
        "/v1/prompts/x/resolve/release?env=staging",
        f"{S}?env=staging",
        f"{S}?env=production&key=u1",
        f"{S}?env=staging&env=production",
        f"{S}?env=qa",
        f"{S}",
        f"{S}/?env=staging",
        f"/v1/prompts/{SUMMARY}/release?env=staging",
    ]
    conditional = [
        (f"{R}?env=staging&key=u1", ETAG),
        (f"{R}?env=staging&key=u1", f"W/{ETAG}"),
        (f"{R}?env=staging&key=u1", f'"other", {ETAG} '),
        (f"{R}?env=staging&key=u1", '"other"'),
        (f"{R}?env=staging&key=u1", "*"),
        (f"{R}?env=staging&key=u1", ""),
        (f"{R}?env=production", ETAG),
        (f"{S}?env=staging", RELEASE_ETAG),
        (f"{S}?env=staging", ETAG),
    ]
    table: list[Ask] = []
    for token in (None, *TOKENS):
        table += [Ask(url, token=token) for url in urls]
        table += [
            Ask(url, headers=(("If-None-Match", tag),), token=token) for url, tag in conditional
        ]
        table += [
            Ask(f"{R}?env=staging&key=u1", method="HEAD", token=token),
            Ask(f"{S}?env=staging", method="HEAD", token=token),
            Ask(f"{R}?env=staging&key=u1", method="POST", token=token),
            Ask(f"{R}?env=staging&key=u1", method="OPTIONS", token=token),
        ]
    for header in (
        "Bearer pct_unknown",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "bearer <read>",
        "BEARER   <read>  ",
        "Bearer <read> trailing",
        "<read>",
    ):
        for url in (f"{R}?env=staging&key=u1", f"{S}?env=production"):
            table.append(Ask(url, raw_authorization=(header,)))
    # Two Authorization headers: the first counts, as Starlette reads them.
    table.append(Ask(f"{R}?env=staging&key=u1", raw_authorization=("Bearer <read>", "Basic x")))
    table.append(Ask(f"{R}?env=staging&key=u1", raw_authorization=("Basic x", "Bearer <read>")))
    table.append(
        Ask(
            f"{R}?env=staging&key=u1",
            headers=(("If-None-Match", '"other"'), ("If-None-Match", ETAG)),
        )
    )
    return table


@dataclass
class Pair:
    fast: TestClient
    routed: TestClient
    secrets: dict[str, str]
    answered: list[bool]  # per GET through the fast app: whether FastPath answered it


def without_fast_path(app: FastAPI) -> FastAPI:
    """The same app with its routes answering every request (no fast path in front)."""
    assert isinstance(app.fast_path, FastPath)
    app.fast_path = None
    return app


@pytest.fixture
def make_pair(make_settings, open_client, monkeypatch) -> Callable[..., Pair]:
    """Build `fast` and `routed` over one database: triage v1 stable with v3 a 40 % canary
    in staging, v2 stable in production (protected); summary v1 in production; a token per
    entry of TOKENS."""
    answered: list[bool] = []
    original = FastPath.answer

    def recording(self: FastPath, scope: dict[str, Any]) -> Any:
        result = original(self, scope)
        answered.append(result is not None)
        return result

    monkeypatch.setattr(FastPath, "answer", recording)

    def make(*, tokens: bool) -> Pair:
        settings = make_settings(
            tokens=tokens, poll_interval=3600, webhook_dispatch=False, rollout_interval=0
        )
        fast = create_app(settings)
        registry = fast.state.ctx.registry
        library, releases = registry.library, registry.releases
        releases.promote(library.get(TRIAGE, "v1"), "staging", actor="t")
        releases.promote(library.get(TRIAGE, "v3"), "staging", actor="t", canary_bp=4000)
        releases.promote(library.get(TRIAGE, "v2"), "production", actor="t", confirmed=True)
        releases.promote(library.get(SUMMARY, "v1"), "production", actor="t", confirmed=True)
        service = TokenService(registry.database)
        secrets = {label: service.create(label, *kind)[0] for label, kind in TOKENS.items()}
        registry.serving.load_all()
        routed = without_fast_path(create_app(settings))
        return Pair(open_client(fast), open_client(routed), secrets, answered)

    return make


def send(
    client: httpx.Client, ask: Ask, secrets: dict[str, str], etags: dict[str, str]
) -> httpx.Response:
    """Send one request of the table, its placeholders filled in."""

    def fill(text: str) -> str:
        for placeholder, value in etags.items():
            text = text.replace(placeholder, value)
        for label, secret in secrets.items():
            text = text.replace(f"<{label}>", secret)
        return text

    headers = [(name, fill(value)) for name, value in ask.headers]
    if ask.token is not None:
        headers.append(("Authorization", f"Bearer {secrets[ask.token]}"))
    headers += [("Authorization", fill(value)) for value in ask.raw_authorization]
    body = b"{}" if ask.method == "POST" else None
    if body is not None:
        headers.append(("Content-Type", "application/json"))
    return client.request(ask.method, ask.url, headers=headers, content=body)


def etags_of(pair: Pair) -> dict[str, str]:
    """The ETags the table sends back, as the routes answer them."""
    admin = {"Authorization": f"Bearer {pair.secrets['admin']}"}
    resolved = pair.routed.get(f"{R}?env=staging&key=u1", headers=admin)
    release = pair.routed.get(f"{S}?env=staging", headers=admin)
    assert resolved.status_code == release.status_code == 200
    return {ETAG: resolved.headers["etag"], RELEASE_ETAG: release.headers["etag"]}


def request_counts(app: FastAPI) -> dict[Any, int]:
    """Requests by (method, route, status) and by route, as /metrics reports them."""
    telemetry = app.state.ctx.telemetry
    counts: dict[Any, int] = dict(telemetry.requests)
    counts.update({route: sum(b) for route, b in telemetry.latency_buckets.items()})
    return counts


@pytest.mark.parametrize("tokens", [False, True], ids=["tokens-off", "tokens-on"])
def test_every_request_of_the_table_gets_the_routes_answer(make_pair, tokens):
    pair = make_pair(tokens=tokens)
    etags = etags_of(pair)
    fast_app, routed_app = pair.fast.app, pair.routed.app
    before = (request_counts(fast_app), request_counts(routed_app))
    cache_before = [(c.hits, c.misses) for c in (_cache(fast_app), _cache(routed_app))]
    differences: list[str] = []
    taken = 0
    for ask in asks():
        pair.answered.clear()
        expected = send(pair.routed, ask, pair.secrets, etags)
        assert not pair.answered, "the routed app has no fast path"
        got = send(pair.fast, ask, pair.secrets, etags)
        where = f"{ask.method} {ask.url} token={ask.token} {ask.headers} {ask.raw_authorization}"
        fast = any(pair.answered)
        taken += fast
        if fast != (ask.method == "GET" and expected.status_code in (200, 304)):
            differences.append(f"{where}: fast path answered={fast}, route {expected.status_code}")
        if got.status_code != expected.status_code:
            differences.append(f"{where}: status {got.status_code} != {expected.status_code}")
        if got.headers.multi_items() != expected.headers.multi_items():
            differences.append(
                f"{where}: headers {got.headers.multi_items()} != {expected.headers.multi_items()}"
            )
        if got.content != expected.content:
            differences.append(f"{where}: body {got.content[:200]!r} != {expected.content[:200]!r}")
    assert not differences, "\n".join(differences)
    assert taken >= (60 if tokens else 15)  # the table does exercise the fast path
    # The request metrics and the cache's counts moved alike (the ETag reads above went to
    # `routed` only, hence the difference taken before).
    after = (request_counts(fast_app), request_counts(routed_app))
    for key in set(after[0]) | set(after[1]):
        fast_moved = after[0].get(key, 0) - before[0].get(key, 0)
        routed_moved = after[1].get(key, 0) - before[1].get(key, 0)
        assert fast_moved == routed_moved, key
    cache_after = [(c.hits, c.misses) for c in (_cache(fast_app), _cache(routed_app))]
    moved = [(a[0] - b[0], a[1] - b[1]) for a, b in zip(cache_after, cache_before, strict=True)]
    assert moved[0] == moved[1]
    assert moved[0][0] > 0  # hits
    assert moved[0][1] > 0  # misses


def _cache(app: FastAPI) -> Any:
    return app.state.ctx.registry.serving


def test_without_a_key_the_fast_path_serves_both_variants_as_the_route_does(make_pair):
    pair = make_pair(tokens=False)
    answers: dict[str, set[bytes]] = {}
    for client in (pair.fast, pair.routed):
        for _ in range(60):
            response = client.get(R, params={"env": "staging"})
            assert response.status_code == 200
            answers.setdefault(response.headers["etag"], set()).add(response.content)
    assert len(answers) == 2  # stable and canary, with one body each whoever answered
    assert all(len(bodies) == 1 for bodies in answers.values())
    assert any(pair.answered)


def test_over_a_socket_the_fast_path_answers_byte_for_byte_as_the_route(make_pair):
    """uvicorn in front of both: the same status line, headers (but Date) and body."""
    pair = make_pair(tokens=True)
    etags = etags_of(pair)
    table = [
        ask
        for ask in asks()
        if ask.token in (None, "read@staging", "admin")
        # a header value with spaces around it cannot be sent on the wire (h11 refuses it)
        and all(
            v == v.strip() for _, v in (*ask.headers, *(("", a) for a in ask.raw_authorization))
        )
    ]
    with (
        serving(pair.fast.app) as fast_url,
        serving(pair.routed.app) as routed_url,
        httpx.Client(base_url=fast_url) as fast,
        httpx.Client(base_url=routed_url) as routed,
    ):
        taken = 0
        for ask in table:
            pair.answered.clear()
            expected = send(routed, ask, pair.secrets, etags)
            got = send(fast, ask, pair.secrets, etags)
            taken += any(pair.answered)
            where = f"{ask.method} {ask.url} token={ask.token} {ask.headers}"
            assert got.status_code == expected.status_code, where
            assert _without_date(got) == _without_date(expected), where
            assert got.content == expected.content, where
    assert taken >= 15


def _without_date(response: httpx.Response) -> list[tuple[str, str]]:
    """The headers but Date, with the server's own address left out (a redirect's
    Location names it)."""
    base = str(response.request.url.copy_with(path="/", query=None)).rstrip("/")
    return [
        (k, v.replace(base, "")) for k, v in response.headers.multi_items() if k.lower() != "date"
    ]


@pytest.fixture
def spans() -> Iterator[Callable[[FastAPI], Callable[[], Any]]]:
    """Turn on FastAPI's OpenTelemetry spans for an app (its own provider, not the
    process's global one); return the finished spans."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    def trace(app: FastAPI) -> Callable[[], Any]:
        # FastAPI(telemetry={"tracer_provider": ...}) at construction does the same; the
        # app is built by create_app, so its telemetry settings are set afterwards.
        app._telemetry["tracer_provider"] = provider  # noqa: SLF001
        return exporter.get_finished_spans

    yield trace
    provider.shutdown()


def test_with_opentelemetry_on_the_router_answers_and_its_span_names_the_route(make_pair, spans):
    from opentelemetry.trace import SpanKind

    pair = make_pair(tokens=False)
    finished = spans(pair.fast.app)
    pair.answered.clear()
    response = pair.fast.get(R, params={"env": "staging", "key": "u1"})
    release = pair.fast.get(S, params={"env": "staging"})
    assert (response.status_code, release.status_code) == (200, 200)
    assert not any(pair.answered)
    server = {
        span.name: span.attributes.get("http.route")
        for span in finished()
        if span.kind is SpanKind.SERVER
    }
    assert server == {
        "GET /v1/prompts/{name}/resolve": "/v1/prompts/{name}/resolve",
        "GET /v1/prompts/{name}/release": "/v1/prompts/{name}/release",
    }
    assert "fastapi.endpoint" in {span.name for span in finished()}  # the routes ran


def test_opentelemetry_configured_while_serving_is_noticed(make_pair, spans):
    """Within FastPath's check interval: a provider set up after the first requests."""
    pair = make_pair(tokens=False)
    assert pair.fast.get(R, params={"env": "staging", "key": "u1"}).status_code == 200
    assert pair.answered == [True]
    finished = spans(pair.fast.app)

    def traced() -> bool:
        pair.fast.get(R, params={"env": "staging", "key": "u1"})
        return bool(finished())

    wait_until(traced, timeout=10, interval=0.1, what="a span of a resolve")
    assert pair.answered[-1] is False


def test_after_a_release_changes_the_fast_path_answers_the_new_version(make_pair):
    pair = make_pair(tokens=False)
    before = pair.fast.get(R, params={"env": "production"})
    assert before.json()["label"] == "v2"
    promoted = pair.fast.post(
        f"/v1/prompts/{TRIAGE}/promote", json={"env": "production", "ref": "v3", "confirm": True}
    )
    assert promoted.status_code == 200, promoted.text
    pair.answered.clear()
    after = pair.fast.get(R, params={"env": "production"})
    stale = pair.fast.get(
        R, params={"env": "production"}, headers={"If-None-Match": before.headers["etag"]}
    )
    assert pair.answered == [True, True]
    assert after.json()["label"] == "v3"
    assert after.headers["etag"] != before.headers["etag"]
    assert int(after.headers["content-length"]) == len(after.content)
    assert (stale.status_code, stale.headers["etag"]) == (200, after.headers["etag"])
