"""The release commands end to end: a git repository in tmp_path and the test's own database.

`repo` has support/triage v1..v3 and summarize v1 on main. Every command runs with
`--database-url` pointing at the test's own SQLite file or PostgreSQL schema, migrated
(`run`), or, for the `db` commands, still empty.
"""

from __future__ import annotations

import json

import pytest

from promptctl.registry.releases.routing import assign, bucket
from promptctl.registry.releases.service import ReleaseService
from promptctl.registry.store.database import Database, head_revision

TRIAGE = "support/triage"
ACTOR = ["--actor", "alice"]
# Uses a variable it does not declare: a lint error.
BROKEN = (
    "---\ninput:\n  article: {type: string}\nsamples:\n  - {article: hi}\n---\n"
    "{{ article }} for {{ team }}\n"
)


@pytest.fixture
def ok(run):
    """Run a command that must succeed; return its stdout."""

    def invoke(*args: str) -> str:
        result = run(*args)
        assert result.exit_code == 0, result.output
        assert result.stderr == ""
        return result.stdout

    return invoke


@pytest.fixture
def state(run, database_url):
    """Everything a refused command must leave alone: every release and every log row."""
    database = Database(database_url)
    releases = ReleaseService(database)

    def read() -> tuple:
        return (
            [s.to_json() for s in releases.status()],
            [[e.to_json() for e in releases.history(name)] for name in (TRIAGE, "summarize")],
        )

    yield read
    database.dispose()


def digest_of(ok, ref: str, name: str = TRIAGE) -> str:
    return json.loads(ok("show", f"{name}@{ref}", "--json"))["digest"]


def described(ok, ref: str, name: str = TRIAGE) -> str:
    return f"{ref} ({digest_of(ok, ref, name)[:12]})"


# -- environments --------------------------------------------------------------------------


def test_env_list_shows_the_default_environments(ok):
    table = ok("env", "list").splitlines()
    listed = json.loads(ok("env", "list", "--json"))

    assert table[0].split() == ["ENVIRONMENT", "PROTECTED", "CREATED"]
    assert [line.split()[:2] for line in table[1:]] == [
        ["development", "no"],
        ["staging", "no"],
        ["production", "yes"],
    ]
    assert [(e["environment"], e["protected"]) for e in listed] == [
        ("development", False),
        ("staging", False),
        ("production", True),
    ]


def test_env_create_protect_and_unprotect_decide_whether_yes_is_needed(ok, run, fails):
    assert ok("env", "create", "qa") == "created environment qa\n"
    assert ok("env", "protect", "qa") == "qa is protected\n"
    fails(run("promote", f"{TRIAGE}@v1", "--env", "qa"), "qa is protected")
    ok("promote", f"{TRIAGE}@v1", "--env", "qa", "--yes")

    assert ok("env", "unprotect", "qa") == "qa is not protected\n"
    ok("promote", f"{TRIAGE}@v2", "--env", "qa")
    created = json.loads(ok("env", "create", "canary-lab", "--protected", "--json"))

    assert (created["environment"], created["protected"]) == ("canary-lab", True)
    assert [e["environment"] for e in json.loads(ok("env", "list", "--json"))][-2:] == [
        "qa",
        "canary-lab",
    ]


def test_env_create_refuses_a_duplicate_or_an_invalid_name(run, fails):
    fails(run("env", "create", "staging"), "environment 'staging' already exists")
    fails(run("env", "create", "Bad Name"), "invalid environment name 'Bad Name'")
    fails(run("env", "protect", "qa"), "unknown environment 'qa'")


# -- promote, canary, rollback -------------------------------------------------------------


def test_promote_canary_ramp_and_complete_print_what_runs(ok):
    v1, v3 = described(ok, "v1"), described(ok, "v3")

    promoted = ok("promote", f"{TRIAGE}@v1", "--env", "development", *ACTOR)
    canary = ok("promote", f"{TRIAGE}@v3", "--env", "development", "--canary", "12.5", *ACTOR)
    ramped = ok("canary", TRIAGE, "--env", "development", "--weight", "50", *ACTOR)
    completed = ok("canary", TRIAGE, "--env", "development", "--complete", *ACTOR)

    assert promoted == f"{TRIAGE}: {v1} is stable in development\n"
    assert canary == f"{TRIAGE}: canary {v3} @ 12.5% in development, stable {v1}\n"
    assert ramped == f"{TRIAGE}: canary {v3} @ 50% in development\n"
    assert completed == f"{TRIAGE}: canary completed, {v3} is stable in development\n"


def test_abort_and_rollback_print_what_serves_afterwards(ok):
    v1, v2 = described(ok, "v1"), described(ok, "v2")
    ok("promote", f"{TRIAGE}@v1", "--env", "development")
    ok("promote", f"{TRIAGE}@v2", "--env", "development", "--canary", "5")

    aborted = ok("canary", TRIAGE, "--env", "development", "--abort")
    ok("promote", f"{TRIAGE}@v2", "--env", "development")
    rolled_back = ok("rollback", TRIAGE, "--env", "development", "--reason", "bad")
    rolled_to = ok("rollback", TRIAGE, "--env", "development", "--to", "v2")

    assert aborted == f"{TRIAGE}: canary aborted, {v1} serves all of development\n"
    assert rolled_back == f"{TRIAGE}: rolled back, {v1} is stable in development\n"
    assert rolled_to == f"{TRIAGE}: rolled back, {v2} is stable in development\n"


def test_promote_json_is_the_new_release_state(ok):
    state = json.loads(
        ok("promote", f"{TRIAGE}@v3", "--env", "staging", "--json", "--actor", "ci-bot")
    )

    assert state["prompt"] == TRIAGE
    assert state["environment"] == "staging"
    assert (state["stable"]["label"], state["stable"]["digest"]) == ("v3", digest_of(ok, "v3"))
    assert (state["canary"], state["weight_bp"], state["revision"]) == (None, 0, 1)
    assert state["updated_by"] == "ci-bot"


def test_promote_from_staging_to_production_needs_yes_and_no_reference(ok, run, fails):
    ok("promote", f"{TRIAGE}@v2", "--env", "staging")

    fails(run("promote", TRIAGE, "--from", "staging", "--env", "production"), "is protected")
    fails(
        run("promote", f"{TRIAGE}@v1", "--from", "staging", "--env", "production", "--yes"),
        "give either NAME@REF or --from, not both",
    )
    promoted = ok("promote", TRIAGE, "--from", "staging", "--env", "production", "--yes")

    assert promoted == f"{TRIAGE}: {described(ok, 'v2')} is stable in production\n"
    [entry] = json.loads(ok("history", TRIAGE, "--env", "production", "--json"))
    assert (entry["action"], entry["reason"]) == ("promote", "from staging")


def test_the_actor_defaults_to_the_git_identity(ok):
    ok("promote", f"{TRIAGE}@v1", "--env", "development")

    [state] = json.loads(ok("status", TRIAGE, "--json"))

    assert state["updated_by"] == "Test Author <author@example.com>"


# -- status, history, resolve, diff --------------------------------------------------------


def test_status_shows_a_table_and_json_of_every_release(ok):
    assert ok("status") == "Nothing released for any prompt.\n"
    ok("promote", f"{TRIAGE}@v1", "--env", "development", *ACTOR)
    ok("promote", f"{TRIAGE}@v2", "--env", "development", "--canary", "0.01", *ACTOR)
    ok("promote", "summarize@v1", "--env", "staging", *ACTOR)

    table = ok("status").splitlines()
    states = json.loads(ok("status", "--json"))

    assert table[0].split() == [
        "PROMPT",
        "ENVIRONMENT",
        "STABLE",
        "CANARY",
        "REV",
        "CHANGED",
        "BY",
        "WHEN",
        "(UTC)",
    ]
    # A running canary carries the canary analysis' one-word verdict: no calls yet.
    assert table[2].split()[:11] == [
        TRIAGE,
        "development",
        "v1",
        f"({digest_of(ok, 'v1')[:12]})",
        "v2",
        f"({digest_of(ok, 'v2')[:12]})",
        "@",
        "0.01%",
        "[no",
        "data]",
        "2",
    ]
    assert table[1].split()[:5] == [
        "summarize",
        "staging",
        "v1",
        f"({digest_of(ok, 'v1', 'summarize')[:12]})",
        "-",
    ]
    assert [(s["prompt"], s["environment"], s["revision"]) for s in states] == [
        ("summarize", "staging", 1),
        (TRIAGE, "development", 2),
    ]
    assert (states[1]["canary"]["label"], states[1]["weight"]) == ("v2", 0.01)
    assert states[1]["analysis"] == "no data"
    assert json.loads(ok("status", "--env", "production", "--json")) == []
    assert ok("status", "summarize", "--env", "production") == (
        "Nothing released for 'summarize' in production.\n"
    )


def test_history_shows_every_action_newest_first(ok):
    ok("promote", f"{TRIAGE}@v1", "--env", "development", *ACTOR, "--reason", "first")
    ok("promote", f"{TRIAGE}@v2", "--env", "development", "--canary", "25", *ACTOR)
    ok("canary", TRIAGE, "--env", "development", "--weight", "75", *ACTOR)
    ok("rollback", TRIAGE, "--env", "development", "--actor", "bob")

    table = ok("history", TRIAGE).splitlines()
    entries = json.loads(ok("history", TRIAGE, "--json"))

    assert table[0].split()[:5] == ["WHEN", "(UTC)", "ENVIRONMENT", "ACTION", "CHANGE"]
    assert [line.split()[3] for line in table[1:]] == [
        "rollback_canary",
        "ramp",
        "canary_start",
        "promote",
    ]
    # Each change in words, with the canary's weight before and after.
    assert "v2 canary 75% -> dropped, v1 serves all" in table[1]
    assert "v2 canary 25% -> 75%" in table[2]
    assert "v2 canary 0% -> 25%, beside stable v1" in table[3]
    assert "(none) -> v1" in table[4]
    assert table[-1].split()[-3:] == ["1", "alice", "first"]
    rows = [
        (e["action"], e["revision"], e["from_weight_bp"], e["to_weight_bp"], e["actor"])
        for e in entries
    ]
    assert rows == [
        ("rollback_canary", 4, 7500, 0, "bob"),
        ("ramp", 3, 2500, 7500, "alice"),
        ("canary_start", 2, 0, 2500, "alice"),
        ("promote", 1, 0, 0, "alice"),
    ]
    assert len(json.loads(ok("history", TRIAGE, "--limit", "2", "--json"))) == 2
    assert ok("history", "summarize") == "No release actions for 'summarize'.\n"


def test_resolve_with_a_key_gives_the_sticky_variant_and_its_bucket(ok):
    ok("promote", f"{TRIAGE}@v1", "--env", "development")
    ok("promote", f"{TRIAGE}@v2", "--env", "development", "--canary", "50")
    canary = digest_of(ok, "v2")
    keys = [f"user-{i}" for i in range(40)]
    in_canary = next(k for k in keys if assign(TRIAGE, canary, 5000, k) == "canary")
    in_stable = next(k for k in keys if assign(TRIAGE, canary, 5000, k) == "stable")

    chosen = json.loads(ok("resolve", TRIAGE, "--env", "development", "--key", in_canary, "--json"))
    other = json.loads(ok("resolve", TRIAGE, "--env", "development", "--key", in_stable, "--json"))
    text = ok("resolve", TRIAGE, "--env", "development", "--key", in_stable)

    assert (chosen["variant"], chosen["label"], chosen["digest"]) == ("canary", "v2", canary)
    assert chosen["bucket"] == bucket(TRIAGE, canary, in_canary) < 5000
    assert (other["variant"], other["label"]) == ("stable", "v1")
    assert other["bucket"] == bucket(TRIAGE, canary, in_stable) >= 5000
    assert text == (
        f"{TRIAGE} in development: {described(ok, 'v1')} (stable), "
        f"key bucket {other['bucket']} vs weight 5000\n"
    )
    again = json.loads(ok("resolve", TRIAGE, "--env", "development", "--key", in_canary, "--json"))
    assert again == chosen


def test_resolve_without_a_canary_always_gives_stable(ok):
    ok("promote", f"{TRIAGE}@v1", "--env", "development")

    resolved = json.loads(ok("resolve", TRIAGE, "--env", "development", "--key", "u", "--json"))

    assert (resolved["variant"], resolved["label"], resolved["bucket"]) == ("stable", "v1", None)


def test_diff_env_compares_what_runs_there_with_what_would_be_promoted(ok, run, fails):
    ok("promote", f"{TRIAGE}@v1", "--env", "development")

    against_head = ok("diff", TRIAGE, "--env", "development")
    against_v2 = json.loads(ok("diff", TRIAGE, "--env", "development", "v2", "--json"))
    unchanged = ok("diff", TRIAGE, "--env", "development", "v1")

    assert against_head.splitlines()[0] == f"{TRIAGE}: v1 -> v3"
    assert "Triage now." in against_head
    assert json.dumps(against_v2).count("Be brief.") >= 1
    assert unchanged == f"{TRIAGE}: no change (v1)\n"
    fails(run("diff", TRIAGE, "--env", "staging"), f"'{TRIAGE}' has no release in staging")
    fails(run("diff", TRIAGE, "--env", "development", "v1", "v2"), "at most one reference")


# -- db ------------------------------------------------------------------------------------


def test_db_upgrade_current_and_downgrade_report_the_revision(promptctl, database_url):
    def db(*args: str) -> str:
        result = promptctl("--database-url", database_url, "db", *args)
        assert result.exit_code == 0, result.output
        return result.stdout

    head = head_revision()

    assert db("current") == f"current: none  head: {head}\n"
    assert db("upgrade").startswith(f"database at {head} (")
    assert db("current") == f"current: {head}  head: {head}\n"
    assert db("downgrade", "0001") == "database at 0001\n"
    assert db("current") == f"current: 0001  head: {head}\n"
    assert db("downgrade", "base") == "database at base\n"
    assert db("current") == f"current: none  head: {head}\n"


def test_release_commands_on_an_unmigrated_postgresql_ask_for_db_upgrade(
    promptctl, database_url, fails
):
    result = promptctl(
        "--database-url", database_url, "promote", f"{TRIAGE}@v1", "--env", "development"
    )

    if database_url.startswith("sqlite"):
        assert result.exit_code == 0, result.output  # the embedded database upgrades itself
    else:
        fails(result, "run 'promptctl db upgrade'")


# -- refusals: exit 1, one line on stderr, nothing changed ----------------------------------


REFUSED = [
    (["promote", "nope", "--env", "development"], "unknown prompt 'nope'"),
    (["promote", f"{TRIAGE}@v9", "--env", "development"], "has no version 'v9'"),
    (["promote", f"{TRIAGE}@v2", "--env", "qa"], "unknown environment 'qa'"),
    (["promote", f"{TRIAGE}@v2", "--env", "development", "--canary", "101"], "outside 0-100"),
    (["promote", f"{TRIAGE}@v2", "--env", "development", "--canary", "12.345"], "two decimals"),
    (["promote", f"{TRIAGE}@v1", "--env", "development"], "v1 of 'support/triage' is already"),
    (["promote", f"{TRIAGE}@v2", "--env", "production"], "production is protected"),
    (["canary", TRIAGE, "--env", "development", "--complete"], "has no canary"),
    (["canary", TRIAGE, "--env", "development", "--weight", "-1"], "outside 0-100"),
    (["canary", TRIAGE, "--env", "development", "--weight", "50.001"], "two decimals"),
    (["canary", "summarize", "--env", "development", "--abort"], "has no release"),
    (["rollback", TRIAGE, "--env", "development"], "nothing to roll back to"),
    (["rollback", TRIAGE, "--env", "development", "--to", "v9"], "has no version 'v9'"),
    (["rollback", TRIAGE, "--env", "staging"], "has no release in staging"),
    (["resolve", TRIAGE, "--env", "staging"], "has no release in staging"),
    (["history", TRIAGE, "--env", "qa"], "unknown environment 'qa'"),
]


def test_a_refused_command_exits_1_with_one_line_and_changes_nothing(ok, run, fails, state):
    ok("promote", f"{TRIAGE}@v1", "--env", "development")
    before = state()

    for args, message in REFUSED:
        fails(run(*args), message)
        assert state() == before, args


def test_a_version_failing_lint_needs_force_and_history_says_it_was_forced(
    ok, run, fails, state, repo
):
    ok("promote", "summarize@v1", "--env", "development")
    repo.commit("break summarize", {"prompts/summarize.prompt": BROKEN})
    before = state()

    fails(run("promote", "summarize@v2", "--env", "development"), "fails lint")
    assert state() == before
    ok("promote", "summarize@v2", "--env", "development", "--force", "--reason", "hotfix")

    [entry, _] = json.loads(ok("history", "summarize", "--json"))
    table = ok("history", "summarize").splitlines()
    assert (entry["action"], entry["forced"], entry["reason"]) == ("promote", True, "hotfix")
    assert table[1].endswith("hotfix [forced past lint errors]")
