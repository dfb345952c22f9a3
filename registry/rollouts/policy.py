"""Rollout policies: the `[rollout]` table of promptctl.toml, reviewed like the prompts.

    [rollout]
    default = "standard"            # the policy of a prompt no glob below names

    [rollout.policies.standard]
    steps = [1, 5, 25, 50]          # canary weight (percent) of each step, rising, < 100
    min_calls = 500                 # calls per arm in a step before it may pass
    min_minutes = 5                 # a step lasts at least this long ...
    max_minutes = 60                # ... and is decided by this deadline
    on_inconclusive = "pause"       # at the deadline without a verdict: pause | rollback | extend
    alpha = 0.05                    # the analysis' overall error rate

    [rollout.policies.standard.guards]
    error_rate = 0.01               # a number: an absolute tolerance (+1 percentage point)
    latency = "10%"                 # "N%": relative to stable (+10 %)
    quality = { tolerance = 0.02, required = true }
    truncation = false              # not a guard of this policy

    [rollout.prompts]
    "support/*" = "careful"         # the first glob (in file order) that matches wins

Which policy a rollout uses: `--policy P` when given, else the first glob of
`[rollout.prompts]` that matches the prompt's name (`fnmatch`, where `*` also matches
`/`), else `rollout.default`, else the built-in `default` (the table below). A policy
lives in promptctl.toml only, never in a prompt's front matter: changing it is not a new
version of any prompt, and one file shows every policy a team runs.

Guards start from the analysis defaults (`registry.analysis.DEFAULT_GUARDS`); a policy's
`guards` table changes or drops them by metric name. Durations are minutes and may be
fractions (0.05 is three seconds), which is how the tests run whole rollouts quickly.
After the last step passes, the canary becomes stable. `extend` moves a step's deadline
once by `max_minutes`; at the second deadline the rollout pauses.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, Literal, cast

from promptctl.registry.analysis import DEFAULT_GUARDS, METRICS, AnalysisConfig, Guard, Tolerance
from promptctl.registry.errors import InvalidPolicy, PolicyNotFound, UsageError
from promptctl.registry.releases.routing import BUCKETS

if TYPE_CHECKING:
    from promptctl.registry.prompts.library import PromptLibrary
    from promptctl.registry.prompts.lint import Finding

CONFIG_FILE = "promptctl.toml"
DEFAULT_POLICY = "default"
INCONCLUSIVE_ACTIONS = ("pause", "rollback", "extend")
OnInconclusive = Literal["pause", "rollback", "extend"]
_POLICY_KEYS = (
    "steps",
    "min_calls",
    "min_minutes",
    "max_minutes",
    "on_inconclusive",
    "alpha",
    "guards",
)
_GUARD_KEYS = ("tolerance", "required", "min_count")
_SECTION_KEYS = ("default", "policies", "prompts")
_MAX_STEPS = 20
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


@dataclass(frozen=True)
class Policy:
    """How one rollout advances: its steps, how long and how much traffic each needs, the
    guards that judge it, and what an undecided deadline does."""

    name: str
    steps_bp: tuple[int, ...]
    min_calls: int
    min_seconds: float
    max_seconds: float
    on_inconclusive: OnInconclusive
    guards: tuple[Guard, ...] = DEFAULT_GUARDS
    alpha: float = 0.05

    def analysis_config(self) -> AnalysisConfig:
        """The analysis settings this policy judges each step with."""
        return AnalysisConfig(alpha=self.alpha, guards=self.guards)

    def to_json(self) -> dict[str, Any]:
        """The snapshot kept with a rollout (the controller never needs git)."""
        return {
            "name": self.name,
            "steps": [bp / 100 for bp in self.steps_bp],
            "steps_bp": list(self.steps_bp),
            "min_calls": self.min_calls,
            "min_seconds": self.min_seconds,
            "max_seconds": self.max_seconds,
            "on_inconclusive": self.on_inconclusive,
            "alpha": self.alpha,
            "guards": [
                {
                    "metric": g.metric,
                    "tolerance": g.tolerance.to_json(),
                    "required": g.required,
                    "min_count": g.min_count,
                }
                for g in self.guards
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Policy:
        """Rebuild a policy from its snapshot."""
        guards = tuple(
            Guard(
                g["metric"],
                Tolerance(float(g["tolerance"]["value"]), g["tolerance"]["kind"] == "relative"),
                bool(g["required"]),
                int(g["min_count"]),
            )
            for g in data["guards"]
        )
        return cls(
            name=data["name"],
            steps_bp=tuple(int(bp) for bp in data["steps_bp"]),
            min_calls=int(data["min_calls"]),
            min_seconds=float(data["min_seconds"]),
            max_seconds=float(data["max_seconds"]),
            on_inconclusive=data["on_inconclusive"],
            guards=guards,
            alpha=float(data["alpha"]),
        )


BUILTIN = Policy(
    name=DEFAULT_POLICY,
    steps_bp=(100, 500, 2500, 5000),
    min_calls=500,
    min_seconds=5 * 60.0,
    max_seconds=60 * 60.0,
    on_inconclusive="pause",
)


@dataclass(frozen=True)
class PolicyBook:
    """Every policy a repository defines, its default, and which prompts use which."""

    policies: Mapping[str, Policy] = field(default_factory=lambda: {DEFAULT_POLICY: BUILTIN})
    default: str = DEFAULT_POLICY
    prompts: tuple[tuple[str, str], ...] = ()  # (glob, policy name), in file order

    def choose(self, prompt: str, asked: str | None = None) -> Policy:
        """Return the policy for a rollout of `prompt`: `asked`, else the first matching
        glob, else the default."""
        name = asked
        if name is None:
            name = next((p for glob, p in self.prompts if fnmatchcase(prompt, glob)), None)
        name = name or self.default
        if name not in self.policies:
            raise PolicyNotFound(name, self.policies)
        return self.policies[name]


# -- reading promptctl.toml ---------------------------------------------------------------


def read_policies(text: str | None, path: str = CONFIG_FILE) -> PolicyBook:
    """Return the policies of a promptctl.toml (None: no file); raise InvalidPolicy at the
    first problem, naming its line and field."""
    found = list(_parse(text, path))
    if isinstance(found[0], InvalidPolicy):
        raise found[0]
    return cast(PolicyBook, found[-1])


def policy_problems(text: str | None, path: str = CONFIG_FILE) -> list[InvalidPolicy]:
    """Return every problem of the `[rollout]` table of a promptctl.toml (lint)."""
    return [p for p in _parse(text, path) if isinstance(p, InvalidPolicy)]


def _parse(text: str | None, path: str) -> Iterator[InvalidPolicy | PolicyBook]:
    """Yield each problem found, then (only if there was none) the book."""
    if text is None:
        yield PolicyBook()
        return
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = getattr(exc, "lineno", None) or _line_in_message(str(exc))
        yield InvalidPolicy(path, line, "(file)", f"not valid TOML: {exc}")
        return
    section = data.get("rollout")
    if section is None:
        yield PolicyBook()
        return
    where = _Locator(text, path)
    if not isinstance(section, dict):
        yield where.problem(("rollout",), "must be a table ([rollout])")
        return
    problems: list[InvalidPolicy] = []
    for key in section:
        if key not in _SECTION_KEYS:
            problems.append(
                where.problem(("rollout", key), f"unknown key (known: {', '.join(_SECTION_KEYS)})")
            )
    policies: dict[str, Policy] = {DEFAULT_POLICY: BUILTIN}
    defined = section.get("policies", {})
    if not isinstance(defined, dict):
        problems.append(where.problem(("rollout", "policies"), "must be a table of policies"))
        defined = {}
    for name, body in defined.items():
        key = ("rollout", "policies", name)
        if not _NAME.match(name):
            problems.append(where.problem(key, "a policy name is letters, digits, '_', '.' or '-'"))
            continue
        if not isinstance(body, dict):
            problems.append(where.problem(key, "must be a table ([rollout.policies.NAME])"))
            continue
        found = _policy(name, body, key, where)
        if isinstance(found, Policy):
            policies[name] = found
        else:
            problems.extend(found)
    default = section.get("default", DEFAULT_POLICY)
    if not isinstance(default, str):
        problems.append(where.problem(("rollout", "default"), "must be a policy name (a string)"))
        default = DEFAULT_POLICY
    elif default not in policies and default in defined:
        pass  # the policy itself is wrong: its problem is reported already
    elif default not in policies:
        problems.append(where.problem(("rollout", "default"), _unknown_policy(default, policies)))
    prompts = section.get("prompts", {})
    globs: list[tuple[str, str]] = []
    if not isinstance(prompts, dict):
        problems.append(
            where.problem(("rollout", "prompts"), "must be a table of glob = policy name")
        )
        prompts = {}
    for glob, name in prompts.items():
        key = ("rollout", "prompts", glob)
        if not isinstance(name, str):
            problems.append(where.problem(key, "must name a policy (a string)"))
        elif name not in policies and name not in defined:
            problems.append(where.problem(key, _unknown_policy(name, policies)))
        else:
            globs.append((glob, name))
    if problems:
        yield from problems
        return
    yield PolicyBook(policies, default, tuple(globs))


def _unknown_policy(name: str, policies: Mapping[str, Policy]) -> str:
    return f"no policy named '{name}' (defined: {', '.join(sorted(policies))})"


def _policy(
    name: str, body: Mapping[str, Any], key: tuple[str, ...], where: _Locator
) -> Policy | list[InvalidPolicy]:
    """Build one policy, or return its problems."""
    problems: list[InvalidPolicy] = []

    def bad(field_name: str, problem: str) -> None:
        problems.append(where.problem((*key, field_name), problem))

    for k in body:
        if k not in _POLICY_KEYS:
            bad(k, f"unknown key (known: {', '.join(_POLICY_KEYS)})")
    base = BUILTIN
    steps = _steps(body.get("steps", [bp / 100 for bp in base.steps_bp]), bad)
    min_calls = body.get("min_calls", base.min_calls)
    if not _is_int(min_calls) or min_calls < 1:
        bad("min_calls", f"{min_calls!r} is not a whole number of calls >= 1")
    low = _minutes(body, "min_minutes", base.min_seconds / 60, bad)
    high = _minutes(body, "max_minutes", base.max_seconds / 60, bad)
    if low is not None and high is not None and high < low:
        bad("max_minutes", f"{high:g} is less than min_minutes ({low:g})")
    action = body.get("on_inconclusive", base.on_inconclusive)
    if action not in INCONCLUSIVE_ACTIONS:
        bad("on_inconclusive", f"{action!r} is not one of {', '.join(INCONCLUSIVE_ACTIONS)}")
    alpha = body.get("alpha", base.alpha)
    if not _is_number(alpha) or not 0 < alpha < 1:
        bad("alpha", f"{alpha!r} is not a number between 0 and 1 (exclusive)")
    guards = _guards(body.get("guards", {}), (*key, "guards"), where, problems)
    if problems or steps is None or low is None or high is None:
        return problems
    return Policy(
        name=name,
        steps_bp=steps,
        min_calls=int(min_calls),
        min_seconds=low * 60,
        max_seconds=high * 60,
        on_inconclusive=action,
        guards=guards,
        alpha=float(alpha),
    )


def _steps(value: Any, bad: Any) -> tuple[int, ...] | None:
    if not isinstance(value, list) or not value:
        bad("steps", "must be a list of canary weights in percent, e.g. [1, 5, 25, 50]")
        return None
    if len(value) > _MAX_STEPS:
        bad("steps", f"{len(value)} steps: at most {_MAX_STEPS}")
        return None
    out: list[int] = []
    for i, weight in enumerate(value, 1):
        if not _is_number(weight) or not 0 < weight < 100:
            bad(
                "steps",
                f"step {i} is {weight!r}: a weight is a percentage above 0 and below 100 "
                "(after the last step the canary becomes stable)",
            )
            return None
        bp = round(weight * 100)
        if abs(bp - weight * 100) > 1e-6 or bp < 1:
            bad("steps", f"step {i} is {weight!r}: weights go in steps of 0.01 %")
            return None
        if out and bp <= out[-1]:
            bad(
                "steps",
                f"step {i} ({weight:g} %) is not above step {i - 1} ({out[-1] / 100:g} %): "
                "weights must rise",
            )
            return None
        out.append(bp)
    assert out[-1] < BUCKETS
    return tuple(out)


def _minutes(body: Mapping[str, Any], name: str, default: float, bad: Any) -> float | None:
    value = body.get(name, default)
    least = 0 if name == "min_minutes" else 1e-9  # a step may pass at once, never end at once
    if not _is_number(value) or not math.isfinite(value) or value < least:
        above = "0 or more" if least == 0 else "above 0"
        bad(name, f"{value!r} is not a number of minutes {above} (fractions allowed)")
        return None
    return float(value)


def _guards(
    value: Any, key: tuple[str, ...], where: _Locator, problems: list[InvalidPolicy]
) -> tuple[Guard, ...]:
    if not isinstance(value, dict):
        problems.append(where.problem(key, "must be a table of metric = tolerance"))
        return DEFAULT_GUARDS
    guards = {g.metric: g for g in DEFAULT_GUARDS}
    for metric, spec in value.items():
        at = (*key, metric)
        if metric not in METRICS:
            problems.append(where.problem(at, f"unknown metric (known: {', '.join(METRICS)})"))
            continue
        if spec is False:
            guards.pop(metric, None)
            continue
        table = spec if isinstance(spec, dict) else {"tolerance": spec}
        unknown = [k for k in table if k not in _GUARD_KEYS]
        if unknown:
            problems.append(
                where.problem((*at, unknown[0]), f"unknown key (known: {', '.join(_GUARD_KEYS)})")
            )
            continue
        base = guards.get(metric) or next((g for g in DEFAULT_GUARDS if g.metric == metric), None)
        try:
            tolerance = _tolerance(table["tolerance"]) if "tolerance" in table else base.tolerance
            required = table.get("required", base.required)
            if not isinstance(required, bool):
                raise UsageError(f"required is {required!r}: true or false")
            guards[metric] = replace(
                base,
                tolerance=tolerance,
                required=required,
                min_count=table.get("min_count", base.min_count),
            )
        except UsageError as exc:
            problems.append(where.problem(at, _without_guard_prefix(str(exc))))
    if not guards:
        problems.append(where.problem(key, "every guard is dropped: keep at least one"))
        return DEFAULT_GUARDS
    return tuple(guards.values())


def _tolerance(value: Any) -> Tolerance:
    """A number is absolute; "N%" is relative to stable."""
    if isinstance(value, str):
        text = value.strip()
        if not text.endswith("%"):
            raise UsageError(
                f"tolerance {value!r}: a number (absolute, e.g. 0.01) or a percentage "
                'string (relative, e.g. "10%")'
            )
        try:
            number = float(text[:-1])
        except ValueError:
            raise UsageError(f"tolerance {value!r} is not a percentage") from None
        if not math.isfinite(number) or number < 0:
            raise UsageError(f"tolerance {value!r} must be a harm >= 0 (the direction is fixed)")
        return Tolerance.relative_of(number / 100)
    if not _is_number(value):
        raise UsageError(f"tolerance {value!r} is not a number")
    if value < 0:
        raise UsageError(f"tolerance {value!r} must be a harm >= 0 (the direction is fixed)")
    return Tolerance.absolute_of(float(value))


def _without_guard_prefix(message: str) -> str:
    return re.sub(r"^guard '[^']*': ", "", message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _line_in_message(message: str) -> int:
    match = re.search(r"line (\d+)", message)
    return int(match.group(1)) if match else 1


def config_text(library: PromptLibrary, rev: str | None) -> str | None:
    """The promptctl.toml of a repository: in the working tree (rev None, or HEAD of a
    bare repository) or at a revision; None when there is none."""
    store = library.store
    if rev is None and store.workdir is not None:
        path = store.workdir / CONFIG_FILE
        return path.read_text(encoding="utf-8") if path.is_file() else None
    if not store.has_commits():
        return None
    blob = store.blob_at(store.resolve(rev or "HEAD"), CONFIG_FILE)
    return store.read_blob(blob).decode("utf-8", errors="replace") if blob else None


def policy_findings(text: str | None, path: str = CONFIG_FILE) -> list[Finding]:
    """Lint's findings for the rollout policies of a promptctl.toml."""
    from promptctl.registry.prompts.lint import ERROR, Finding

    return [
        Finding(p.path, p.line, ERROR, "rollout-policy", f"{p.field}: {p.problem}")
        for p in policy_problems(text, path)
    ]


# -- where a key is written ---------------------------------------------------------------

_KEY_PART = r'(?:"(?:[^"\\]|\\.)*"|\'[^\']*\'|[A-Za-z0-9_-]+)'
_DOTTED = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER = re.compile(rf"^\s*\[\s*({_DOTTED})\s*\]")
_ASSIGN = re.compile(rf"^\s*({_DOTTED})\s*=")
_PART = re.compile(_KEY_PART)


def _parts(dotted: str) -> tuple[str, ...]:
    out = []
    for match in _PART.finditer(dotted):
        part = match.group(0)
        out.append(part[1:-1] if part[0] in "\"'" else part)
    return tuple(out)


class _Locator:
    """The line each table and key of a TOML text starts on (tomllib keeps no positions),
    read line by line: good for the headers and `key =` lines policies are written in."""

    def __init__(self, text: str, path: str) -> None:
        self.path = path
        self.lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        for number, line in enumerate(text.splitlines(), 1):
            header = _HEADER.match(line)
            if header:
                table = _parts(header.group(1))
                self.lines.setdefault(table, number)
                continue
            assign = _ASSIGN.match(line)
            if assign:
                self.lines.setdefault((*table, *_parts(assign.group(1))), number)

    def line(self, key: tuple[str, ...]) -> int:
        """The line of `key`, else of its nearest enclosing table or key written, else 1."""
        for end in range(len(key), 0, -1):
            found = self.lines.get(key[:end])
            if found is not None:
                return found
        return 1

    def problem(self, key: tuple[str, ...], problem: str) -> InvalidPolicy:
        return InvalidPolicy(self.path, self.line(key), ".".join(key), problem)
