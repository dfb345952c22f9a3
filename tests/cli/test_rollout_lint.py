"""`promptctl lint` checks the rollout policies of promptctl.toml."""

from __future__ import annotations

import json

POLICY = """\
[rollout]
default = "quick"

[rollout.policies.quick]
steps = [10, 5]
on_inconclusive = "pause"
"""


def test_lint_reports_a_bad_policy_by_file_line_and_field_and_exits_1(promptctl, repo):
    repo.write("promptctl.toml", POLICY)
    result = promptctl("lint")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == (
        "promptctl.toml:5: error: rollout.policies.quick.steps: step 2 (5 %) is not above "
        "step 1 (10 %): weights must rise [rollout-policy]"
    )


def test_lint_of_a_revision_reads_that_revisions_policies(promptctl, repo):
    repo.commit("a bad policy", {"promptctl.toml": POLICY})
    repo.write("promptctl.toml", POLICY.replace("[10, 5]", "[5, 10]"))
    assert promptctl("lint").exit_code == 0
    result = promptctl("lint", "--rev", "HEAD", "--json")
    findings = json.loads(result.stdout)["findings"]
    assert [(f["path"], f["line"], f["code"]) for f in findings] == [
        ("promptctl.toml", 5, "rollout-policy")
    ]


def test_a_good_policy_lints_clean(promptctl, repo):
    repo.write("promptctl.toml", POLICY.replace("[10, 5]", "[5, 10]"))
    result = promptctl("lint")
    assert result.exit_code == 0, result.stdout
