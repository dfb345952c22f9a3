"""Canary analysis from the database: the release, its step's window, the arms from rollups.

Through the facade (`Registry.analyze`) on SQLite and PostgreSQL, with events ingested by
the real metrics service: the arms read back are what was sent (counts, successful
calls' latency, squares), the window starts at the current weight step, and bad input
gets a clear answer, never a pass.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from promptctl.registry.analysis import ArmData, LatencyHistogram, Moments, Proportion, Verdict
from promptctl.registry.analysis.ingest_sink import IngestSink, start_canary
from promptctl.registry.analysis.report import CanaryReport
from promptctl.registry.analysis.simulation import BASELINE
from promptctl.registry.analysis.stored import arms
from promptctl.registry.core import Registry, Settings
from promptctl.registry.errors import (
    EnvironmentNotFound,
    NoCanary,
    OtherEnvironment,
    ReleaseNotFound,
    UsageError,
)
from promptctl.registry.metrics.aggregate import Aggregate
from promptctl.registry.metrics.storage import window_parts
from promptctl.registry.releases.actions import Abort, Promote, Ramp

NAME = "greet"


@pytest.fixture
def repo(git_repo):
    for number in (1, 2, 3):
        git_repo.commit(f"greeting {number}", {f"prompts/{NAME}.prompt": f"Hello {number}\n"})
    return git_repo


@pytest.fixture
def registry(repo, migrated_database_url) -> Iterator[Registry]:
    registry = Registry(Settings(repo=repo.path, database_url=migrated_database_url))
    yield registry
    registry.close()


def canary(registry: Registry, env: str = "qa", weight_bp: int = 5000) -> IngestSink:
    digests = start_canary(
        registry, NAME, env, stable_ref="HEAD~1", canary_ref="HEAD", weight_bp=weight_bp
    )
    return IngestSink(registry, NAME, env, digests)


def test_the_arms_read_back_are_exactly_what_was_ingested(registry):
    sink = canary(registry)
    rng = random.Random(5)
    sent = {"stable": BASELINE.calls(rng, 1_500), "canary": BASELINE.calls(rng, 700)}
    for arm, calls in sent.items():
        sink.record(arm, calls)
    stable, canary_arm = sink.arms()
    for data, calls in ((stable, sent["stable"]), (canary_arm, sent["canary"])):
        ok = [c for c in calls if not c.error]
        assert data.calls == len(calls)
        assert data.errors == len(calls) - len(ok) > 0
        # Failed calls' latency never enters latency.
        assert data.latency == LatencyHistogram.of(c.latency_ms for c in ok)
        assert data.invalid_output == Proportion(len(ok), sum(not c.output_valid for c in ok))
        assert data.truncation == Proportion(len(ok), sum(c.finish_reason == "length" for c in ok))
        for name, field in (
            ("cost", "cost_usd"),
            ("input_tokens", "input_tokens"),
            ("output_tokens", "output_tokens"),
            ("quality", "quality"),
        ):
            want = Moments.of(getattr(c, field) for c in calls if getattr(c, field) is not None)
            got = getattr(data, name)
            assert got.n == want.n > 0
            assert got.total == pytest.approx(want.total)
            assert got.sumsq == pytest.approx(want.sumsq)
    report = sink.reports[-1]
    assert (report.stable_calls, report.canary_calls) == (1_500, 700)
    assert report.weight_bp == 5000
    assert report.canary.number == 3
    assert report.stable.number == 2


def test_a_canary_without_calls_is_no_data_never_a_pass(registry):
    canary(registry)
    report = registry.analyze(NAME, "qa")
    assert report.verdict is Verdict.NO_DATA
    assert report.reasons == ("no data for stable or canary",)
    assert {m.verdict for m in report.metrics} == {Verdict.NO_DATA}


def test_one_arm_without_calls_is_no_data_for_that_arm(registry):
    sink = canary(registry)
    sink.record("stable", BASELINE.calls(random.Random(1), 500))
    report = registry.analyze(NAME, "qa")
    assert report.verdict is Verdict.NO_DATA
    assert report.reasons == ("no data for canary",)
    assert report.metric("latency").verdict is Verdict.NO_DATA


def test_a_release_without_canary_is_refused_by_name(registry):
    registry.create_environment("qa")
    registry.perform(Promote(prompt=NAME, environment="qa", ref="HEAD", actor="t"))
    with pytest.raises(NoCanary, match="'greet' has no canary in qa to analyze"):
        registry.analyze(NAME, "qa")


def test_no_release_or_no_environment_is_not_found(registry):
    with pytest.raises(EnvironmentNotFound):
        registry.analyze(NAME, "nowhere")
    with pytest.raises(ReleaseNotFound, match="'greet' has no release in staging"):
        registry.analyze(NAME, "staging")


def test_the_window_starts_with_the_current_weight_step(registry):
    sink = canary(registry, weight_bp=1000)
    first = registry.analyze(NAME, "qa")
    sink.record("canary", BASELINE.calls(random.Random(2), 50))
    registry.perform(Ramp(prompt=NAME, environment="qa", weight_bp=5000, actor="t"))
    after = registry.analyze(NAME, "qa")
    log = registry.history(NAME, "qa", 1)[0]
    assert log.action == "ramp"
    assert after.step_started_at == log.time
    assert after.step_started_at >= first.step_started_at
    assert after.since == log.time.replace(second=0, microsecond=0)
    assert after.until > datetime.now(UTC) - timedelta(seconds=1)
    assert (after.until - after.since) % timedelta(minutes=1) == timedelta(0)
    # The same minute: the calls before the ramp are read, and a note says so.
    if after.since <= log.time < after.since + timedelta(minutes=1) and log.time.second:
        assert any("rounded down" in note for note in after.notes)


def test_since_moves_the_start_and_says_when_it_spans_more_than_the_step(registry):
    canary(registry)
    report = registry.analyze(NAME, "qa", since="2h")
    assert report.since <= datetime.now(UTC) - timedelta(hours=2)
    assert any("before the canary's current weight step" in n for n in report.notes)
    with pytest.raises(UsageError, match="in the future"):
        registry.analyze(NAME, "qa", since=(datetime.now(UTC) + timedelta(hours=1)).isoformat())


def test_an_environment_limited_viewer_may_not_analyse_another(registry):
    canary(registry)
    _, viewer = registry.tokens.create("reader", "read", environment="staging")
    with pytest.raises(OtherEnvironment):
        registry.analyze(NAME, "qa", viewer=viewer)


def test_an_aborted_canary_has_nothing_to_analyse(registry):
    canary(registry)
    registry.perform(Abort(prompt=NAME, environment="qa", actor="t"))
    with pytest.raises(NoCanary):
        registry.analyze(NAME, "qa")


def test_the_report_survives_its_json_form(registry):
    sink = canary(registry)
    rng = random.Random(3)
    sink.record("stable", BASELINE.calls(rng, 400))
    sink.record("canary", BASELINE.calls(rng, 400))
    report = registry.analyze(NAME, "qa")
    again = CanaryReport.from_json(report.to_json())
    assert again == report
    assert again.to_json() == report.to_json()


# -- the window's parts and rows stored before the squares were kept --------------------


def test_whole_hours_come_from_hour_rows_and_the_edges_from_minute_rows():
    h = 3600
    assert window_parts(10 * h + 17 * 60, 13 * h + 5 * 60) == [
        (60, 10 * h + 17 * 60, 11 * h),
        (h, 11 * h, 13 * h),
        (60, 13 * h, 13 * h + 5 * 60),
    ]
    assert window_parts(10 * h, 12 * h) == [(h, 10 * h, 12 * h)]
    assert window_parts(10 * h + 60, 10 * h + 600) == [(60, 10 * h + 60, 10 * h + 600)]


class Row:
    """A stored rollup row, as the query hands it over."""

    def __init__(self, digest: str, variant: str, agg: Aggregate, **overrides) -> None:
        self.__dict__.update(agg.values(), digest=digest, variant=variant, **overrides)


def test_rows_stored_before_the_squares_and_successful_latency_are_left_out_of_them():
    new, old = Aggregate(), Aggregate()
    for latency, error, cost in ((100.0, False, 0.01), (5.0, True, None), (300.0, False, 0.03)):
        new.add_event(latency, error, 10, 20, cost, None)
        old.add_event(latency, error, 10, 20, cost, None)
    rows = [
        Row("s", "stable", new),
        Row(
            "s",
            "stable",
            old,
            cost_sumsq=None,
            input_tokens_sumsq=None,
            output_tokens_sumsq=None,
            success_latency_histogram=None,
            success_latency_sum=None,
        ),
        Row("other", "stable", new),
        Row("c", "stable", new),  # the canary's digest reported as stable: not an arm
    ]
    stable, canary_arm = arms(rows, "s", "c")
    assert canary_arm == ArmData()
    assert (stable.calls, stable.errors) == (6, 2)
    assert stable.latency == LatencyHistogram.of([100.0, 300.0])
    assert stable.cost == Moments(2, 0.04, 0.01**2 + 0.03**2)
    assert stable.input_tokens == Moments(3, 30.0, 300.0)


def test_merging_a_row_without_squares_keeps_them_unknown():
    old = Aggregate()
    old.add_event(10.0, False, 5, 5, 0.1, None)
    stored = old.values() | {"cost_sumsq": None, "success_latency_histogram": None}
    merged = Aggregate()
    merged.merge_row(type("R", (), stored))
    fresh = Aggregate()
    fresh.add_event(20.0, False, 5, 5, 0.1, None)
    merged.merge(fresh)
    values = merged.values()
    assert values["cost_sumsq"] is None
    assert values["success_latency_histogram"] is None
    assert values["input_tokens_sumsq"] == 50.0
    assert values["count"] == 2
