"""Fuzzing the API from its own OpenAPI document (schemathesis, seeded).

For every operation, schemathesis generates requests that follow the document and
requests that break it (wrong types, missing fields, values out of range); each one is
sent to the app in process. Whatever the request, the answer is never a 5xx, its status
and content type are among the ones the document gives for that operation, and its body
validates against the schema documented for that status (a problem against the problem
schema, a release against the release's): the document is the contract clients are
generated from.

Seeded (derandomized), so a run is repeatable: about 500 requests in some seconds; the
number of cases is fixed, the time only reported (`pytest -s`). Schemathesis's pytest
plugin (`schema.parametrize`) does not work with this pytest, hence the loop over the
operations with hypothesis's `given` inside one test.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_conformance import body_problems
from schemathesis import GenerationMode

from promptctl.server.app import create_app

TRIAGE = "support/triage"  # the chat prompt of conftest.repo (v1..v3)
EXAMPLES = 15  # per operation and generation mode
# Fuzzing looks for what the app does with odd input, not for differences between
# databases.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def released_app(make_settings) -> FastAPI:
    """Tokens off; triage v1 stable in staging with v3 a 30 % canary, v2 in production.
    A change stream ends at once, so that its request returns."""
    app = create_app(make_settings(stream_max_seconds=0.01))
    registry = app.state.ctx.registry
    library, releases = registry.library, registry.releases
    releases.promote(library.get(TRIAGE, "v1"), "staging", actor="fuzz")
    releases.promote(library.get(TRIAGE, "v3"), "staging", actor="fuzz", canary_bp=3000)
    releases.promote(library.get(TRIAGE, "v2"), "production", actor="fuzz", confirmed=True)
    registry.serving.load_all()
    return app


@pytest.mark.slow
@sqlite_only
def test_fuzzed_requests_get_documented_answers_and_never_a_5xx(released_app):
    document = released_app.openapi()
    schema = schemathesis.openapi.from_asgi("/openapi.json", released_app)
    problems: list[str] = []
    unbreakable: list[str] = []
    sent = 0
    started = time.perf_counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                sent += fuzz(operation, mode, document, problems)
            except Unsatisfiable:  # nothing in this operation can be made invalid
                assert mode is GenerationMode.NEGATIVE, operation.label
                unbreakable.append(operation.label)
    elapsed = time.perf_counter() - started
    print(f"\nfuzzing: {sent} requests in {elapsed:.1f} s; none invalid for {unbreakable}")
    assert sent >= 300
    assert not problems, "\n".join(sorted(set(problems)))


def fuzz(operation: Any, mode: GenerationMode, document: dict, problems: list[str]) -> int:
    """Send EXAMPLES requests of `operation` made in `mode`; note what breaks the contract
    in `problems`; return how many were sent."""
    sent = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        nonlocal sent
        sent += 1
        response = case.call()
        status = response.status_code
        where = f"{case.method} {case.formatted_path} ({mode.value}) -> {status}"
        if status >= 500:
            problems.append(f"{where}: {response.text[:300]}")
            return
        content_type = response.headers.get("content-type", [""])[0]
        found = body_problems(
            document, operation.path, case.method, status, content_type, response.content
        )
        problems.extend(f"{where}: {problem}; {response.text[:300]}" for problem in found)

    check()
    return sent
