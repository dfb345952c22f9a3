"""Automated rollouts end to end, over a socket: a real server whose controller looks every
fraction of a second, and an application that calls a stand-in model with the prompt its
PromptClient serves each user (sticky keys) and reports every call with `track`. How the
model behaves (latency, errors, cost, quality) depends on the version it was served, so
the rollout is decided by the traffic alone:

- a bad canary is rolled back by the controller, and the release log row names the
  failing metric and its interval;
- a good canary climbs every step and completes, and no user goes back to the old
  version on the way;
- a prompt with too little traffic is paused (or rolled back, per its policy) at its
  step's deadline;
- two `promptctl serve` replicas on one PostgreSQL: each step is taken once; the acting
  replica killed with SIGKILL, the other takes the controller's lease and finishes.

The policies below are the repository's promptctl.toml, with durations in fractions of a
minute. Nothing here measures time: `wait_until`'s timeouts only guard against a hang.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select
from support import ServeProcess, promptctl_command, serving, wait_until

from promptctl.client import PromptClient
from promptctl.registry.store.models import ControllerLease
from promptctl.server.app import create_app

PROMPT = "assistant"
ENV = "staging"
CONTROLLER = "promptctl-controller"
INTERVAL = 0.25  # seconds between two looks of the controller

# Guards for a few hundred calls: tolerances wide enough that a copy of stable passes
# within about 60 canary calls, narrow enough that 40 % errors fail within as many.
_GUARDS = """\
error_rate = { tolerance = 0.15, min_count = 40 }
latency = { tolerance = "50%", min_count = 40 }
cost = { tolerance = "25%", min_count = 40 }
quality = { tolerance = 0.1, min_count = 20 }
input_tokens = false
output_tokens = false
invalid_output = false
truncation = false
"""

POLICIES = f"""\
[rollout]
default = "sparse"

[rollout.prompts]
"assist*" = "quick"   # the policy a rollout of {PROMPT} gets unless it names one

[rollout.policies.quick]
steps = [25, 50]
min_calls = 60
min_minutes = 0
max_minutes = 1
on_inconclusive = "pause"

[rollout.policies.quick.guards]
{_GUARDS}
# Three seconds a step, far fewer calls than it needs.
[rollout.policies.sparse]
steps = [50]
min_calls = 5000
min_minutes = 0
max_minutes = 0.05
on_inconclusive = "pause"

[rollout.policies.sparse-rollback]
steps = [50]
min_calls = 5000
min_minutes = 0
max_minutes = 0.05
on_inconclusive = "rollback"

# Five steps of at least two seconds each: long enough to kill a replica in the middle.
[rollout.policies.replicas]
steps = [10, 20, 30, 40, 50]
min_calls = 40
min_minutes = 0.035
max_minutes = 2
on_inconclusive = "pause"

[rollout.policies.replicas.guards]
{_GUARDS}"""


def assistant(number: int) -> str:
    return (
        "---\n"
        "description: Answer a customer\n"
        "model: gpt-4o-mini\n"
        "input:\n"
        "  question: {type: string}\n"
        "samples:\n"
        "  - {question: Where is my order?}\n"
        "---\n"
        f"Answer briefly (version {number}): {{{{ question }}}}\n"
    )


def _build(repo) -> None:
    repo.commit("assistant v1", {"prompts/assistant.prompt": assistant(1)})
    repo.commit("rollout policies", {"promptctl.toml": POLICIES})
    repo.commit("assistant v2: same answers, cheaper", {"prompts/assistant.prompt": assistant(2)})
    repo.commit("assistant v3: fails often", {"prompts/assistant.prompt": assistant(3)})


@pytest.fixture
def repo(built_repo):
    """assistant v1 (stable), v2 (a good canary), v3 (a bad one) and the policies."""
    return built_repo("rollouts-end-to-end", _build)


# -- the application ------------------------------------------------------------------


@dataclass(frozen=True)
class Model:
    """How the model behaves with one prompt version."""

    latency_ms: float
    error_rate: float
    cost_usd: float
    quality: float


MODELS = {
    1: Model(latency_ms=2.0, error_rate=0.0, cost_usd=0.0010, quality=0.85),
    2: Model(latency_ms=2.0, error_rate=0.0, cost_usd=0.0009, quality=0.86),  # good
    3: Model(latency_ms=2.0, error_rate=0.4, cost_usd=0.0010, quality=0.85),  # bad
}


class ModelError(Exception):
    """What the stand-in model raises on a failed call."""


class Application:
    """A service calling the model for random users in a thread of its own, with the
    prompt version PromptClient serves each user; every call reported with `track`."""

    def __init__(self, url: str, *, pause: float = 0.0, seed: int = 0) -> None:
        self.url = url
        self.pause = pause  # seconds between two calls: how thin the traffic is
        self.rng = random.Random(seed)
        self.calls = 0
        self.versions: dict[str, list[int]] = defaultdict(list)  # user -> versions served
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Application:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        if self.failure is not None:
            raise self.failure

    def _run(self) -> None:
        try:
            with PromptClient(self.url, environment=ENV, timeout=10, flush_interval=0.1) as client:
                while not self._stop.is_set():
                    self._call(client)
                    if self.pause:
                        self._stop.wait(self.pause)
        except BaseException as exc:  # seen by the test at exit
            self.failure = exc

    def _call(self, client: PromptClient) -> None:
        user = f"user-{self.rng.randrange(2000)}"
        prompt = client.get(PROMPT, key=user)
        assert prompt.version is not None
        self.versions[user].append(prompt.version)
        model = MODELS[prompt.version]
        try:
            with client.track(prompt) as call:
                prompt.render(question="Where is my order?")
                time.sleep(model.latency_ms / 1000 * self.rng.lognormvariate(0, 0.25))
                if self.rng.random() < model.error_rate:
                    raise ModelError("the model gave up")
                call.record(
                    input_tokens=120,
                    output_tokens=60,
                    cost_usd=model.cost_usd * self.rng.lognormvariate(0, 0.1),
                    quality=min(1.0, max(0.0, self.rng.gauss(model.quality, 0.05))),
                )
        except ModelError:
            pass
        self.calls += 1


# -- the server -----------------------------------------------------------------------


class Api:
    """The few API calls the tests make."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)

    def promote(self, ref: str) -> None:
        answer = self.http.post(f"/v1/prompts/{PROMPT}/promote", json={"env": ENV, "ref": ref})
        assert answer.status_code == 200, answer.text

    def start(self, ref: str, policy: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"env": ENV, "ref": ref}
        if policy is not None:
            body["policy"] = policy
        answer = self.http.post(f"/v1/prompts/{PROMPT}/rollout", json=body)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def rollout(self) -> dict[str, Any]:
        answer = self.http.get(f"/v1/prompts/{PROMPT}/rollout", params={"env": ENV})
        assert answer.status_code == 200, answer.text
        return answer.json()

    def release(self) -> dict[str, Any]:
        answer = self.http.get(f"/v1/prompts/{PROMPT}/release", params={"env": ENV})
        assert answer.status_code == 200, answer.text
        return answer.json()

    def history(self) -> list[dict[str, Any]]:
        answer = self.http.get(f"/v1/prompts/{PROMPT}/history", params={"env": ENV})
        assert answer.status_code == 200, answer.text
        return answer.json()

    def wait_for(self, *statuses: str, timeout: float = 45.0) -> dict[str, Any]:
        """Wait until the rollout's status is one of `statuses`; return the rollout."""

        def ended() -> dict[str, Any] | None:
            state = self.rollout()
            return state if state["status"] in statuses else None

        return wait_until(ended, timeout=timeout, interval=0.1, what=f"a rollout {statuses}")


@pytest.fixture
def api(make_settings) -> Iterator[Api]:
    """The server over the repository, its controller looking every INTERVAL seconds, with
    v1 stable in staging."""
    with serving(create_app(make_settings(rollout_interval=INTERVAL))) as url:
        api = Api(url)
        api.promote("HEAD~2")
        yield api


def served_everyone(url: str, version: int) -> Callable[[], bool]:
    """A condition: a fresh client serves `version` to each of a hundred users."""

    def check() -> bool:
        with PromptClient(url, environment=ENV, timeout=10, stream=False) as client:
            return all(client.get(PROMPT, key=f"user-{i}").version == version for i in range(100))

    return check


INTERVAL_OF = re.compile(r"(\w+) ([+-][\d.e+-]+) \[([+-][\d.e+-]+), ([+-][\d.e+-]+)\]")


# -- one replica ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_bad_canary_is_rolled_back_and_the_log_names_the_metric_and_its_interval(api):
    started = api.start("HEAD")  # v3; the policy comes from promptctl.toml's glob
    assert (started["policy"]["name"], started["weight"]) == ("quick", 25)

    with Application(api.url):
        state = api.wait_for("rolled_back", "completed", "paused")

    assert state["status"] == "rolled_back", state["reason"]
    release = api.release()
    assert (release["stable"]["version"], release["canary"]) == (1, None)
    row = api.history()[0]
    assert (row["action"], row["actor"]) == ("rollback_canary", CONTROLLER)
    assert row["reason"].startswith("rollout rolled back: step 1/2 (25%): fail: ")
    failing = {m[0]: tuple(float(x) for x in m[1:]) for m in INTERVAL_OF.findall(row["reason"])}
    assert "error_rate" in failing, row["reason"]
    estimate, low, high = failing["error_rate"]
    assert 0.15 < low <= estimate <= high  # the whole interval beyond the tolerance
    decided = state["events"][-1]
    assert (decided["action"], decided["actor"]) == ("rolled_back", CONTROLLER)
    assert decided["analysis"]["verdict"] == "fail"
    wait_until(served_everyone(api.url, 1), what="every user back on v1")


@pytest.mark.slow
def test_a_good_canary_climbs_every_step_and_completes(api):
    api.start("HEAD~1", policy="quick")  # v2

    with Application(api.url) as app:
        state = api.wait_for("completed", "rolled_back", "paused")
        wait_until(served_everyone(api.url, 2), what="every user on v2")

    assert state["status"] == "completed", state["reason"]
    assert [e["action"] for e in state["events"]] == ["started", "advanced", "completed"]
    assert all(e["analysis"]["verdict"] == "pass" for e in state["events"][1:])
    release = api.release()
    assert (release["stable"]["version"], release["canary"]) == (2, None)
    controller_rows = [
        (row["action"], row["to_weight"]) for row in api.history() if row["actor"] == CONTROLLER
    ]
    assert controller_rows == [("complete", 0), ("ramp", 50)]
    # Sticky keys under a rising weight: a user once served v2 is never served v1 again.
    for user, versions in app.versions.items():
        if 2 in versions:
            first = versions.index(2)
            assert set(versions[first:]) == {2}, user


@pytest.mark.slow
@pytest.mark.parametrize(
    ("policy", "ends", "canary_after"),
    [("sparse", "paused", 2), ("sparse-rollback", "rolled_back", None)],
)
def test_a_thin_canary_is_acted_on_at_its_deadline_as_its_policy_says(
    api, policy, ends, canary_after
):
    api.start("HEAD~1", policy=policy)

    with Application(api.url, pause=0.2) as app:
        state = api.wait_for("paused", "rolled_back", "completed")

    assert state["status"] == ends, state["reason"]
    assert 0 < app.calls < 5000
    decided = state["events"][-1]
    assert decided["actor"] == CONTROLLER
    assert "deadline" in decided["reason"]
    assert "5000 needed per arm" in decided["reason"]
    assert decided["analysis"]["verdict"] in ("no data", "inconclusive", "pass")
    release = api.release()
    canary = release["canary"]["version"] if release["canary"] else None
    assert canary == canary_after
    if ends == "paused":  # the canary keeps its weight until a person decides
        assert release["weight"] == 50
        assert "rollout resume" in api.rollout()["next"]


# -- two replicas on PostgreSQL -----------------------------------------------------------


@contextmanager
def replicas(repo, database_url: str, count: int) -> Iterator[list[ServeProcess]]:
    """`count` promptctl serve processes on one database, each a controller."""
    command = [
        *promptctl_command(),
        "--repo",
        str(repo.path),
        "--database-url",
        database_url,
        "serve",
        "--port",
        "0",
    ]
    env = {**os.environ, "PROMPTCTL_ROLLOUT_INTERVAL": str(INTERVAL * 2)}
    started = [ServeProcess(command, env=env) for _ in range(count)]
    try:
        for process in started:
            process.wait_started()
        yield started
    finally:
        for process in started:
            process.kill()


def lease_holder_pid(database_url: str) -> int | None:
    """The process id of the replica holding the controller's lease (host:pid:suffix)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            holder = connection.execute(select(ControllerLease.holder)).scalar()
    finally:
        engine.dispose()
    return int(holder.split(":")[1]) if holder else None


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.skipif(
    not os.environ.get("PROMPTCTL_TEST_POSTGRES_URL"), reason="needs PROMPTCTL_TEST_POSTGRES_URL"
)
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_replicas_take_each_step_once_and_one_finishes_after_the_other_is_killed(
    repo, migrated_database_url
):
    with replicas(repo, migrated_database_url, 2) as (first, second):
        api = Api(first.url)
        api.promote("HEAD~2")
        api.start("HEAD~1", policy="replicas")
        holder = wait_until(lambda: lease_holder_pid(migrated_database_url), what="a controller")
        acting, standby = (first, second) if holder == first.process.pid else (second, first)
        assert holder == acting.process.pid

        with Application(standby.url):
            wait_until(lambda: Api(standby.url).rollout()["step"] >= 2, what="a first step up")
            acting.kill()
            state = Api(standby.url).wait_for("completed", "rolled_back", "paused", timeout=60)

        assert state["status"] == "completed", state["reason"]
        assert lease_holder_pid(migrated_database_url) == standby.process.pid
        history = Api(standby.url).history()

    # Every step exactly once: four step-ups and one completion, in order, no repeats.
    actions = [e["action"] for e in state["events"]]
    assert actions == ["started", "advanced", "advanced", "advanced", "advanced", "completed"]
    by_controller = [(r["action"], r["to_weight"]) for r in history if r["actor"] == CONTROLLER]
    assert by_controller[::-1] == [
        ("ramp", 20),
        ("ramp", 30),
        ("ramp", 40),
        ("ramp", 50),
        ("complete", 0),
    ]
