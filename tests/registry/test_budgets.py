"""Budgets in front matter: parsed into PromptFile.budget, refused at the field when
malformed, and checked by lint against every rendered sample."""

from __future__ import annotations

import pytest

from promptctl.registry.errors import InvalidPromptFile
from promptctl.registry.metrics.prices import price_book
from promptctl.registry.prompts.budget import Budget
from promptctl.registry.prompts.lint import ERROR, WARNING, lint_library
from promptctl.registry.prompts.promptfile import parse_prompt_file

MODEL = "house-model"  # priced by the override below only
PRICES = price_book({MODEL: {"input": 1000.0, "output": 2000.0}})  # USD per 1M tokens


def prompt_text(budget: str, params: str = "{max_tokens: 100}", sample: str = "hi") -> str:
    return (
        "---\n"
        f"model: {MODEL}\n"
        f"params: {params}\n"
        f"budget: {budget}\n"
        "input:\n"
        "  ticket: string\n"
        "samples:\n"
        f"  - {{ticket: {sample}}}\n"
        "---\n"
        '{% message "system" %}Triage the ticket.{% endmessage %}\n'
        '{% message "user" %}{{ ticket }}{% endmessage %}\n'
    )


def test_a_budget_is_parsed():
    parsed = parse_prompt_file(
        "p.prompt", prompt_text("{input_tokens: 1200, output_tokens: 400, cost_usd: 0.002}")
    )
    assert parsed.budget == Budget(input_tokens=1200, output_tokens=400, cost_usd=0.002)
    assert parse_prompt_file("p.prompt", prompt_text("{cost_usd: 1}")).budget == Budget(
        cost_usd=1.0
    )
    assert parse_prompt_file("p.prompt", "---\nmodel: m\n---\nx\n").budget is None


@pytest.mark.parametrize(
    ("budget", "field", "message"),
    [
        ("{input_tokens: -5}", "budget.input_tokens", "positive whole number of tokens, not -5"),
        ("{output_tokens: 0}", "budget.output_tokens", "positive whole number of tokens, not 0"),
        ("{output_tokens: lots}", "budget.output_tokens", "not 'lots'"),
        ("{input_tokens: 10.5}", "budget.input_tokens", "not 10.5"),
        ("{input_tokens: true}", "budget.input_tokens", "not True"),
        ("{cost_usd: -0.01}", "budget.cost_usd", "positive number of dollars, not -0.01"),
        ("{cost_usd: cheap}", "budget.cost_usd", "not 'cheap'"),
        ("{cost_usd: .nan}", "budget.cost_usd", "not nan"),
        ("{tokens: 5}", "budget.tokens", "unknown key 'tokens' in budget (allowed: input_tokens"),
        ("[100, 200]", "budget", "'budget' must be a mapping"),
    ],
)
def test_a_malformed_budget_is_refused_at_its_field(budget, field, message):
    with pytest.raises(InvalidPromptFile) as raised:
        parse_prompt_file("prompts/p.prompt", prompt_text(budget))
    error = raised.value
    assert message in error.detail
    assert (error.path, error.field, error.line) == ("prompts/p.prompt", field, 4)
    assert str(error).startswith("prompts/p.prompt:4: ")


def test_a_malformed_budget_fails_lint_with_file_line_and_field(git_repo, make_library):
    git_repo.write("prompts/p.prompt", prompt_text("{input_tokens: -5}"))
    [finding] = lint_library(make_library(git_repo), ["p"])
    assert (finding.path, finding.line, finding.severity, finding.code) == (
        "prompts/p.prompt",
        4,
        ERROR,
        "invalid-file",
    )


def lint(git_repo, make_library, text: str, prices=PRICES) -> list[tuple[int, str, str, str]]:
    git_repo.write("prompts/p.prompt", text)
    found = lint_library(make_library(git_repo), ["p"], prices=prices)
    return [(f.line, f.severity, f.code, f.message) for f in found]


def test_a_sample_within_budget_passes(git_repo, make_library):
    text = prompt_text("{input_tokens: 1000, output_tokens: 100, cost_usd: 1}")
    assert lint(git_repo, make_library, text) == []


def test_a_sample_over_the_input_budget_is_an_error(git_repo, make_library):
    long_ticket = '"' + "my invoice is wrong " * 30 + '"'
    text = prompt_text("{input_tokens: 50}", sample=long_ticket)
    [(line, severity, code, message)] = lint(git_repo, make_library, text)
    assert (line, severity, code) == (8, ERROR, "input-over-budget")
    assert message.startswith("sample 1 renders to ")
    assert "input tokens, over budget.input_tokens 50 (o200k_base (estimate" in message


def test_max_tokens_above_the_output_budget_is_a_warning(git_repo, make_library):
    text = prompt_text("{output_tokens: 300}", params="{max_tokens: 1000}")
    assert lint(git_repo, make_library, text) == [
        (
            3,
            WARNING,
            "max-tokens-over-budget",
            "params.max_tokens 1,000 allows answers over budget.output_tokens 300",
        )
    ]


def test_a_worst_case_over_the_cost_budget_is_a_warning(git_repo, make_library):
    # 100 output tokens alone cost 100 * 2000 / 1e6 = $0.20.
    text = prompt_text("{cost_usd: 0.1}")
    [(line, severity, code, message)] = lint(git_repo, make_library, text)
    assert (line, severity, code) == (8, WARNING, "cost-over-budget")
    assert "+ 100 output tokens of house-model at PROMPTCTL_PRICES" in message
    assert message.endswith("over budget.cost_usd $0.1")


def test_the_cost_budget_is_not_checked_without_a_known_price(git_repo, make_library):
    text = prompt_text("{cost_usd: 0.000001}")
    assert lint(git_repo, make_library, text, prices=None) == []
    # The maintained data does not know the house model either.
    assert lint(git_repo, make_library, text, prices=price_book({})) == []
