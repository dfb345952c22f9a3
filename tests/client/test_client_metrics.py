"""PromptClient metrics against a real server: track, record, score, flush, close, OTel.

Each test reports into an environment of its own (`fresh_env`), and reads back what the
server made of it: GET /v1/prompts/{name}/metrics, and the stored events themselves.
"""

from __future__ import annotations

import importlib
import sys
import time
from typing import Any

import httpx
import pytest
from client_kit import CANARY_PROMPT, RecordingTransport, ServerProcess, key_for
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from promptctl.client import PromptClient, ResolvedPrompt
from promptctl.registry.store.models import MetricEvent


class LLMTimeout(Exception):
    """What a model SDK raises when the model is too slow."""


def version_metrics(server: ServerProcess, env: str, prompt: ResolvedPrompt) -> dict[str, Any]:
    """The summary entry of the version and variant `prompt` was served as."""
    summary = server.summary(prompt.name, env)
    (entry,) = [
        v
        for v in summary["versions"]
        if (v["digest"], v["variant"]) == (prompt.digest, prompt.variant)
    ]
    return entry


def stored_event(server: ServerProcess, event_id: str) -> MetricEvent:
    """The event as the server stored it, read from its database."""
    engine = create_engine(server.database_url)
    try:
        with Session(engine) as session:
            event = session.get(MetricEvent, event_id)
            assert event is not None, f"event {event_id} was not stored"
            return event
    finally:
        engine.dispose()


@pytest.fixture
def stable_prompt(shared_server: ServerProcess, fresh_env: str) -> tuple[str, str]:
    """A key routed to stable v1 of the canary prompt in this test's environment."""
    release = shared_server.release(CANARY_PROMPT, fresh_env).json()
    return CANARY_PROMPT, key_for(CANARY_PROMPT, release, "stable")


def test_recorded_usage_arrives_in_the_servers_summary(
    shared_server: ServerProcess, fresh_env: str, stable_prompt: tuple[str, str]
) -> None:
    name, key = stable_prompt
    with PromptClient(shared_server.url, environment=fresh_env, timeout=10) as prompts:
        prompt = prompts.get(name, key=key)
        ids = []
        for tokens, cost, quality in ((100, 0.001, 0.5), (300, 0.003, 1.0)):
            with prompts.track(prompt) as call:
                call.record(
                    input_tokens=tokens,
                    output_tokens=tokens // 10,
                    cost_usd=cost,
                    quality=quality,
                    customer="acme",
                )
            ids.append(call.event_id)
        assert prompts.flush()

    metrics = version_metrics(shared_server, fresh_env, prompt)
    assert (metrics["count"], metrics["errors"], metrics["version"]) == (2, 0, 1)
    assert metrics["input_tokens"] == {"mean": 200, "count": 2}
    assert metrics["output_tokens"] == {"mean": 20, "count": 2}
    assert metrics["cost_usd"]["total"] == pytest.approx(0.004)
    assert metrics["quality"]["mean"] == pytest.approx(0.75)
    event = stored_event(shared_server, ids[1])
    assert (event.prompt, event.environment, event.digest) == (name, fresh_env, prompt.digest)
    assert (event.variant, event.input_tokens, event.output_tokens) == ("stable", 300, 30)
    assert (event.cost_usd, event.quality, event.error) == (0.003, 1.0, False)
    assert event.attributes == {"customer": "acme"}
    assert prompts.stats.events_sent == 2


def test_track_measures_the_latency_of_the_call(
    shared_server: ServerProcess, fresh_env: str, stable_prompt: tuple[str, str]
) -> None:
    name, key = stable_prompt
    with PromptClient(shared_server.url, environment=fresh_env, timeout=10) as prompts:
        prompt = prompts.get(name, key=key)
        with prompts.track(prompt):
            time.sleep(0.2)  # the model at work

    latency = version_metrics(shared_server, fresh_env, prompt)["latency_ms"]
    assert latency["min"] >= 200  # the whole call was measured, sleep included


def test_track_records_an_exception_as_an_error_and_re_raises_it(
    shared_server: ServerProcess, fresh_env: str, stable_prompt: tuple[str, str]
) -> None:
    name, key = stable_prompt
    with PromptClient(shared_server.url, environment=fresh_env, timeout=10) as prompts:
        prompt = prompts.get(name, key=key)
        with pytest.raises(LLMTimeout, match="model too slow"), prompts.track(prompt) as failed:
            raise LLMTimeout("model too slow")
        with prompts.track(prompt) as succeeded:
            pass

    metrics = version_metrics(shared_server, fresh_env, prompt)
    assert (metrics["count"], metrics["errors"], metrics["error_rate"]) == (2, 1, 0.5)
    assert stored_event(shared_server, failed.event_id).error is True
    assert stored_event(shared_server, succeeded.event_id).error is False


def test_events_are_keyed_to_the_digest_and_variant_actually_served(
    shared_server: ServerProcess, fresh_env: str
) -> None:
    release = shared_server.release(CANARY_PROMPT, fresh_env).json()
    keys = {v: key_for(CANARY_PROMPT, release, v) for v in ("stable", "canary")}
    with PromptClient(shared_server.url, environment=fresh_env, timeout=10) as prompts:
        served = {v: prompts.get(CANARY_PROMPT, key=k) for v, k in keys.items()}
        for count, variant in ((3, "stable"), (2, "canary")):
            for _ in range(count):
                with prompts.track(served[variant]):
                    pass

    counts = {
        (v["variant"], v["version"], v["digest"]): v["count"]
        for v in shared_server.summary(CANARY_PROMPT, fresh_env)["versions"]
    }
    assert counts == {
        ("stable", 1, release["stable"]["digest"]): 3,
        ("canary", 2, release["canary"]["digest"]): 2,
    }


def test_score_attaches_a_quality_to_an_event_already_sent(
    shared_server: ServerProcess, fresh_env: str, stable_prompt: tuple[str, str]
) -> None:
    name, key = stable_prompt
    with PromptClient(shared_server.url, environment=fresh_env, timeout=10) as prompts:
        prompt = prompts.get(name, key=key)
        with prompts.track(prompt) as judged:
            pass
        with prompts.track(prompt):
            pass
        prompts.score(judged.event_id, 0.9)  # queued right behind its event
        assert prompts.flush()
        with pytest.raises(ValueError, match="quality"):
            prompts.score(judged.event_id, 1.5)

    quality = version_metrics(shared_server, fresh_env, prompt)["quality"]
    assert (quality["count"], quality["mean"]) == (1, pytest.approx(0.9))
    assert stored_event(shared_server, judged.event_id).quality == pytest.approx(0.9)
    assert prompts.stats.scores_sent == 1


def test_flush_delivers_what_is_queued_without_waiting_for_the_interval(
    shared_server: ServerProcess, fresh_env: str, stable_prompt: tuple[str, str]
) -> None:
    name, key = stable_prompt
    with PromptClient(
        shared_server.url, environment=fresh_env, timeout=10, flush_interval=3600
    ) as prompts:
        prompt = prompts.get(name, key=key)
        for _ in range(40):
            with prompts.track(prompt):
                pass
        assert prompts.flush() is True
        assert prompts.stats.events_pending == 0
        assert shared_server.count(name, fresh_env) == 40


def test_close_delivers_every_queued_event(
    shared_server: ServerProcess, fresh_env: str, stable_prompt: tuple[str, str]
) -> None:
    name, key = stable_prompt
    prompts = PromptClient(
        shared_server.url, environment=fresh_env, timeout=10, flush_interval=3600, batch_size=7
    )
    prompt = prompts.get(name, key=key)
    for _ in range(25):
        with prompts.track(prompt):
            pass
    prompts.close()

    assert shared_server.count(name, fresh_env) == 25
    assert (prompts.stats.events_sent, prompts.stats.events_pending) == (25, 0)


def test_leaving_the_client_as_a_context_manager_delivers_queued_events(
    shared_server: ServerProcess, fresh_env: str, stable_prompt: tuple[str, str]
) -> None:
    name, key = stable_prompt
    with PromptClient(
        shared_server.url, environment=fresh_env, timeout=10, flush_interval=3600
    ) as prompts:
        prompt = prompts.get(name, key=key)
        for _ in range(12):
            with prompts.track(prompt):
                pass

    assert shared_server.count(name, fresh_env) == 12


def test_a_full_buffer_drops_new_events_counts_them_and_delivers_the_rest_later(
    shared_server: ServerProcess,
    fresh_env: str,
    stable_prompt: tuple[str, str],
    transport: RecordingTransport,
    down_port: int,
) -> None:
    name, key = stable_prompt
    with PromptClient(
        shared_server.url, environment=fresh_env, timeout=10, max_buffer=5, transport=transport
    ) as prompts:
        prompt = prompts.get(name, key=key)
        transport.route_to(down_port)  # the server goes away
        calls = []
        for _ in range(8):
            with prompts.track(prompt) as call:
                pass
            calls.append(call)
        assert prompts.flush(timeout=0.5) is False
        while_down = prompts.stats
        dropped, pending = while_down.events_dropped, while_down.events_pending
        transport.route_to(None)  # and comes back
        assert prompts.flush(timeout=30)

    assert (dropped, pending) == (3, 5)
    assert shared_server.count(name, fresh_env) == 5
    assert stored_event(shared_server, calls[4].event_id).event_id == calls[4].event_id
    assert (prompts.stats.events_sent, prompts.stats.events_dropped) == (5, 3)


def test_a_garbage_answer_to_a_batch_never_loses_it(
    shared_server: ServerProcess, fresh_env: str, stable_prompt: tuple[str, str]
) -> None:
    name, key = stable_prompt
    garbage = iter(
        [
            httpx.Response(200, json={"results": None}),
            httpx.Response(200, json={"results": [1, 2, 3]}),
            httpx.Response(200, json={"results": []}),
            httpx.Response(200, text="<html>proxy login</html>"),
        ]
    )
    real = httpx.Client(base_url=shared_server.url, timeout=10)

    def proxy(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/metrics":
            answer = next(garbage, None)
            if answer is not None:
                return answer
        forwarded = real.send(
            real.build_request(
                request.method,
                request.url.path,
                params=request.url.params,
                content=request.content,
                headers={"content-type": request.headers.get("content-type", "application/json")},
            )
        )
        return httpx.Response(forwarded.status_code, content=forwarded.content)

    with PromptClient(
        shared_server.url, environment=fresh_env, transport=httpx.MockTransport(proxy)
    ) as prompts:
        prompt = prompts.get(name, key=key)
        for _ in range(3):
            with prompts.track(prompt):
                pass
        delivered = prompts.flush(timeout=60)
    real.close()

    assert delivered
    assert shared_server.count(name, fresh_env) == 3
    assert prompts.stats.send_failures == 4
    assert prompts.stats.events_sent == 3


def test_track_puts_the_prompt_and_usage_on_the_current_opentelemetry_span(
    shared_server: ServerProcess, fresh_env: str
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    release = shared_server.release(CANARY_PROMPT, fresh_env).json()
    key = key_for(CANARY_PROMPT, release, "canary")
    with PromptClient(shared_server.url, environment=fresh_env, timeout=10) as prompts:
        prompt = prompts.get(CANARY_PROMPT, key=key)
        with tracer.start_as_current_span("llm call"), prompts.track(prompt) as call:
            call.record(input_tokens=412, output_tokens=38, cost_usd=0.0012)
        with (
            pytest.raises(LLMTimeout),
            tracer.start_as_current_span("failed llm call"),
            prompts.track(prompt) as failed,
        ):
            raise LLMTimeout("model too slow")

    spans = {span.name: dict(span.attributes or {}) for span in exporter.get_finished_spans()}
    promptctl_attributes = {
        k: v for k, v in spans["llm call"].items() if k.startswith("promptctl.")
    }
    assert promptctl_attributes == {
        "promptctl.prompt.name": CANARY_PROMPT,
        "promptctl.prompt.environment": fresh_env,
        "promptctl.prompt.version": 2,
        "promptctl.prompt.digest": release["canary"]["digest"],
        "promptctl.prompt.variant": "canary",
        "promptctl.event_id": call.event_id,
        "promptctl.error": False,
        "promptctl.input_tokens": 412,
        "promptctl.output_tokens": 38,
        "promptctl.cost_usd": 0.0012,
    }
    # Beside them, the OpenTelemetry GenAI semantic conventions' attributes.
    gen_ai = {k: v for k, v in spans["llm call"].items() if not k.startswith("promptctl.")}
    assert gen_ai == {
        "gen_ai.request.model": prompt.model,
        "gen_ai.request.temperature": prompt.params["temperature"],
        "gen_ai.request.max_tokens": prompt.params["max_tokens"],
        "gen_ai.usage.input_tokens": 412,
        "gen_ai.usage.output_tokens": 38,
    }
    assert spans["failed llm call"]["promptctl.error"] is True
    assert spans["failed llm call"]["promptctl.event_id"] == failed.event_id
    assert spans["failed llm call"]["error.type"] == "timeout"  # LLMTimeout
    assert spans["failed llm call"]["promptctl.error_type"] == "timeout"


def test_without_opentelemetry_installed_tracking_works_the_same(
    shared_server: ServerProcess,
    fresh_env: str,
    stable_prompt: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for module in [m for m in sys.modules if m.split(".")[0] == "opentelemetry"]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # makes the import fail
    with pytest.raises(ImportError):
        importlib.import_module("opentelemetry")

    name, key = stable_prompt
    with PromptClient(shared_server.url, environment=fresh_env, timeout=10) as prompts:
        prompt = prompts.get(name, key=key)
        with prompts.track(prompt) as call:
            call.record(input_tokens=5)
        with pytest.raises(LLMTimeout), prompts.track(prompt):
            raise LLMTimeout("model too slow")

    metrics = version_metrics(shared_server, fresh_env, prompt)
    assert (metrics["count"], metrics["errors"]) == (2, 1)
