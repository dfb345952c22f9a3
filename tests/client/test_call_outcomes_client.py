"""Tracked calls say how they ended: error types from exceptions, recorded finish reasons
and output validity, the current call, and the OpenTelemetry trace id, as the server
stores them (a real server on a socket, in a thread of this process)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from support import serving

from promptctl.client import PromptClient, current_call
from promptctl.registry.store.models import MetricEvent
from promptctl.server.app import create_app
from promptctl.server.settings import ServerSettings

GREET = "---\nmodel: gpt-4o-mini\nparams: {temperature: 0.3, max_tokens: 200}\n---\nSay hello.\n"


class RateLimitError(Exception):
    """As provider SDKs name it."""


class APIStatusError(Exception):
    """As provider SDKs carry the HTTP status."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"status {status_code}")
        self.status_code = status_code


class ProviderHiccup(Exception):
    pass


@pytest.fixture
def server(git_repo, migrated_database_url) -> Iterator[tuple[str, object]]:
    git_repo.commit("greet", {"prompts/greet.prompt": GREET})
    app = create_app(ServerSettings(repo=git_repo.path, database_url=migrated_database_url))
    ctx = app.state.ctx
    version = ctx.registry.library.get("greet", "HEAD")
    ctx.registry.releases.promote(version, "staging", actor="test", confirmed=True)
    ctx.cache.refresh_release("greet", "staging")
    with serving(app) as url:
        yield url, ctx.registry


def stored(registry, event_id: str) -> MetricEvent:
    with registry.database.session() as session:
        event = session.get(MetricEvent, event_id)
        assert event is not None, f"event {event_id} was not stored"
        session.expunge(event)
        return event


@pytest.mark.parametrize(
    ("exception", "label"),
    [
        (TimeoutError("slow"), "timeout"),
        (ConnectionError("reset"), "connection_error"),
        (RateLimitError("slow down"), "rate_limit"),
        (APIStatusError(429), "rate_limit"),
        (APIStatusError(503), "provider_5xx"),
        (ProviderHiccup("?"), "provider_hiccup"),
        (KeyError("x"), "key_error"),
    ],
)
def test_an_exception_in_a_tracked_call_names_its_error_type(server, exception, label):
    url, registry = server
    with PromptClient(url, environment="staging", timeout=10) as prompts:
        prompt = prompts.get("greet")
        with pytest.raises(type(exception)), prompts.track(prompt) as call:
            raise exception
        assert prompts.flush()
    event = stored(registry, call.event_id)
    assert (event.error, event.error_type) == (True, label)


def filtered_call(prompts: PromptClient, prompt) -> None:
    """A call that records its own error type, then raises (with its event id)."""
    with prompts.track(prompt) as call:
        call.record(error_type="content_filter")
        raise ProviderHiccup(call.event_id)


def test_recorded_outcomes_reach_the_server(server):
    url, registry = server
    with PromptClient(url, environment="staging", timeout=10) as prompts:
        prompt = prompts.get("greet")
        with prompts.track(prompt) as truncated:
            truncated.record(output_tokens=200, finish_reason="length", output_valid=False)
        with prompts.track(prompt) as refused:
            refused.record(error_type="invalid_output")  # failed without raising
        with pytest.raises(ProviderHiccup) as raised:
            filtered_call(prompts, prompt)
        assert prompts.flush()
    first = stored(registry, truncated.event_id)
    assert (first.finish_reason, first.output_valid, first.error) == ("length", False, False)
    assert truncated.truncated
    second = stored(registry, refused.event_id)
    assert (second.error, second.error_type) == (True, "invalid_output")
    # What the application recorded wins over the exception's class.
    assert stored(registry, str(raised.value)).error_type == "content_filter"


def test_current_call_is_the_innermost_tracked_call_of_this_context(server):
    url, _ = server
    with PromptClient(url, environment="staging", timeout=10) as prompts:
        prompt = prompts.get("greet")
        assert current_call() is None
        with prompts.track(prompt) as outer:
            assert current_call() is outer
            with prompts.track(prompt) as inner:
                assert current_call() is inner
            assert current_call() is outer
        assert current_call() is None
        with pytest.raises(RuntimeError), prompts.track(prompt):
            raise RuntimeError
        assert current_call() is None

        async def task(seen: list) -> None:
            with prompts.track(prompt) as call:
                await asyncio.sleep(0)
                seen.append(current_call() is call)

        async def both() -> list:
            seen: list = []
            await asyncio.gather(task(seen), task(seen))
            return seen

        assert asyncio.run(both()) == [True, True]  # each task sees its own call


@pytest.mark.parametrize(
    ("values", "error", "message"),
    [
        ({"finish_reason": "x" * 33}, ValueError, "finish_reason must be a non-empty string"),
        ({"error_type": "e" * 65}, ValueError, "error_type must be a non-empty string"),
        ({"error_type": 3}, ValueError, "of at most 64 printable characters"),
        ({"output_valid": "no"}, TypeError, "output_valid must be True or False"),
        ({"trace_id": ""}, ValueError, "trace_id must be a non-empty string"),
    ],
)
def test_record_refuses_what_the_server_would_reject(server, values, error, message):
    url, _ = server
    with PromptClient(url, environment="staging", timeout=10) as prompts:
        with prompts.track(prompts.get("greet")) as call, pytest.raises(error, match=message):
            call.record(**values)
        assert call.finish_reason is None
        assert call.error_type is None


def test_the_trace_id_of_the_current_span_goes_with_the_event(server):
    url, registry = server
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    with PromptClient(url, environment="staging", timeout=10) as prompts:
        prompt = prompts.get("greet")
        with tracer.start_as_current_span("llm call") as span, prompts.track(prompt) as call:
            call.record(input_tokens=30, output_tokens=200, finish_reason="length")
        with prompts.track(prompt) as untraced:
            pass
        assert prompts.flush()
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert stored(registry, call.event_id).trace_id == trace_id
    assert stored(registry, untraced.event_id).trace_id is None
    (finished,) = exporter.get_finished_spans()
    attributes = dict(finished.attributes or {})
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.request.max_tokens"] == 200
    assert attributes["gen_ai.request.temperature"] == 0.3
    assert attributes["gen_ai.usage.input_tokens"] == 30
    assert attributes["gen_ai.usage.output_tokens"] == 200
    assert attributes["gen_ai.response.finish_reasons"] == ("length",)
    assert "error.type" not in attributes
