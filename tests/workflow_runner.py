"""Run a GitHub Actions job's shell steps here, as the runner would (an act-like harness).

`run_job` reads a workflow's YAML and runs the `run:` steps of one job in order with
`bash --noprofile --norc -eo pipefail` (what `shell: bash` means on GitHub), each with
the environment GitHub would give it: the GITHUB_* variables, the workflow's `env`, the
step's `env` with its `${{ }}` expressions evaluated, and fresh GITHUB_OUTPUT and
GITHUB_STEP_SUMMARY files whose contents become `steps.<id>.outputs` and the job summary.
A step runs when the steps before it succeeded, or when its `if:` says so; a failing step
fails the job.

What it does not do, so the caller does it: `uses:` steps (actions) are not run. The
caller says which it stands in for (`emulated`), e.g. actions/checkout by having made the
checkout itself; any other action fails the run, so a new one in the workflow is noticed.
Steps named in `replaced` are not run either: the caller gives the shell text to run
instead, and says why. Expressions are the small part of GitHub's language the workflows
under test use (context paths with `*`, string literals, `contains`, `always`,
`cancelled`, `success`, `failure`, `!`); anything else is an error, never a guess.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
BASH = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]


@dataclass
class StepResult:
    name: str
    id: str | None
    ran: bool
    returncode: int = 0
    output: str = ""
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class JobResult:
    steps: list[StepResult]
    summary: str

    @property
    def ok(self) -> bool:
        return all(step.returncode == 0 for step in self.steps if step.ran)

    @property
    def log(self) -> str:
        return "\n".join(f"## {s.name} (exit {s.returncode})\n{s.output}" for s in self.steps)

    def step(self, name: str) -> StepResult:
        return next(s for s in self.steps if s.name == name)


def load_workflow(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1 reads the key `on` as the boolean true.
    if True in data:
        data["on"] = data.pop(True)
    return data


def step_name(step: Mapping[str, Any]) -> str:
    return step.get("name") or step.get("uses") or step["run"].splitlines()[0]


def run_job(
    workflow: Mapping[str, Any],
    job: str,
    *,
    workspace: Path,
    github: Mapping[str, Any],
    env: Mapping[str, str],
    secrets: Mapping[str, str] | None = None,
    emulated: Mapping[str, str] = {},
    replaced: Mapping[str, str] = {},
    scratch: Path,
) -> JobResult:
    """Run `job`'s steps in `workspace`; `github` is the github context (with `event`),
    `env` the process environment the runner starts from (with the GITHUB_* variables)."""
    spec = workflow["jobs"][job]
    shell = (spec.get("defaults") or workflow.get("defaults") or {}).get("run", {}).get("shell")
    assert shell == "bash", f"the harness runs `shell: bash` steps, the workflow says {shell!r}"
    contexts: dict[str, Any] = {
        "github": github,
        "secrets": dict(secrets or {}),
        "steps": {},
        "env": {},
    }
    contexts["env"] = {
        k: _evaluate_text(str(v), contexts) for k, v in workflow.get("env", {}).items()
    }
    contexts["env"].update(
        {k: _evaluate_text(str(v), contexts) for k, v in spec.get("env", {}).items()}
    )
    results: list[StepResult] = []
    failed = False
    summary = []
    for index, step in enumerate(spec["steps"]):
        name = step_name(step)
        contexts["job_failed"] = failed
        if not _should_run(step.get("if"), contexts):
            results.append(StepResult(name, step.get("id"), ran=False))
            continue
        if "uses" in step:
            action = step["uses"].split("@")[0]
            assert action in emulated, f"step {name!r} uses {action}, which nothing emulates"
            results.append(StepResult(name, step.get("id"), ran=False, output=emulated[action]))
            continue
        script = replaced.get(name, step["run"])
        step_env = dict(contexts["env"])
        step_env.update(
            {k: _evaluate_text(str(v), contexts) for k, v in step.get("env", {}).items()}
        )
        output_file = scratch / f"output-{index}"
        summary_file = scratch / f"summary-{index}"
        output_file.write_text("")
        summary_file.write_text("")
        script_file = scratch / f"step-{index}.sh"
        script_file.write_text(_evaluate_text(script, contexts))
        process = subprocess.run(
            [*BASH, str(script_file)],
            cwd=workspace,
            env={
                **env,
                **step_env,
                "GITHUB_OUTPUT": str(output_file),
                "GITHUB_STEP_SUMMARY": str(summary_file),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=300,  # a guard against a hang, never a measurement
        )
        outputs = parse_outputs(output_file.read_text())
        result = StepResult(name, step.get("id"), True, process.returncode, process.stdout, outputs)
        results.append(result)
        summary.append(summary_file.read_text())
        if step.get("id"):
            contexts["steps"][step["id"]] = {"outputs": outputs}
        if process.returncode != 0:
            failed = True
    return JobResult(results, "".join(summary))


def parse_outputs(text: str) -> dict[str, str]:
    """Read a GITHUB_OUTPUT file: `name=value` lines and `name<<DELIMITER` blocks."""
    outputs: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            value = []
            for inner in lines:
                if inner == delimiter:
                    break
                value.append(inner)
            outputs[name] = "\n".join(value)
        elif "=" in line:
            name, value_text = line.split("=", 1)
            outputs[name] = value_text
    return outputs


def _should_run(condition: Any, contexts: dict[str, Any]) -> bool:
    if condition is None:
        return not contexts["job_failed"]
    text = str(condition).strip()
    match = EXPRESSION.fullmatch(text)
    value = _evaluate(match.group(1) if match else text, contexts)
    # Without a status function GitHub adds `success() &&` to the condition.
    if not re.search(r"\b(always|cancelled|failure|success)\(\)", text):
        return not contexts["job_failed"] and _truthy(value)
    return _truthy(value)


def _evaluate_text(text: str, contexts: dict[str, Any]) -> str:
    return EXPRESSION.sub(lambda m: _to_string(_evaluate(m.group(1), contexts)), text)


def _evaluate(expression: str, contexts: dict[str, Any]) -> Any:
    expression = expression.strip()
    if expression.startswith("!"):
        return not _truthy(_evaluate(expression[1:], contexts))
    call = re.fullmatch(r"(\w+)\((.*)\)", expression, re.DOTALL)
    if call:
        name, args = call.group(1), _split_arguments(call.group(2))
        if name == "always" and not args:
            return True
        if name == "cancelled" and not args:
            return False
        if name == "success" and not args:
            return not contexts["job_failed"]
        if name == "failure" and not args:
            return contexts["job_failed"]
        if name == "contains" and len(args) == 2:
            haystack, needle = (_evaluate(a, contexts) for a in args)
            if isinstance(haystack, list):
                return any(str(item).lower() == str(needle).lower() for item in haystack)
            return str(needle).lower() in _to_string(haystack).lower()
        raise AssertionError(f"the harness does not know the expression {expression!r}")
    literal = re.fullmatch(r"'((?:[^']|'')*)'", expression)
    if literal:
        return literal.group(1).replace("''", "'")
    if re.fullmatch(r"[A-Za-z_][\w-]*(\.(\*|[\w-]+))*", expression):
        return _lookup(expression.split("."), contexts)
    raise AssertionError(f"the harness does not know the expression {expression!r}")


def _lookup(path: list[str], value: Any) -> Any:
    for index, key in enumerate(path):
        if key == "*":
            items = value if isinstance(value, list) else list((value or {}).values())
            return [_lookup(path[index + 1 :], item) for item in items]
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def _split_arguments(text: str) -> list[str]:
    args, depth, quoted, current = [], 0, False, ""
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "(":
            depth += 1
        elif not quoted and char in ")":
            depth -= 1
        if char == "," and not quoted and depth == 0:
            args.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        args.append(current)
    return [a.strip() for a in args]


def _truthy(value: Any) -> bool:
    return bool(value)  # as GitHub: '' , 0, null and false are false, any other string true


def _to_string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def runner_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment a step starts from: this one, without promptctl's own."""
    source = os.environ if base is None else base
    return {k: v for k, v in source.items() if not k.startswith("PROMPTCTL_")}
