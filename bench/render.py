"""Render benchmark: what the render limits cost on real prompts, and how fast bombs stop.

    .venv/bin/python bench/render.py [--calls 3000]

1. Every example prompt's first sample rendered through `PromptVersion.render` (bounded:
   no constant folding, intercepted operators and filters, deadline checks, output
   counting, message blocks and validation), against the same templates rendered by a
   plain Jinja2 `SandboxedEnvironment` (same partials, same variables, compiled once) in
   the same run: per-call microseconds and the ratio.
2. Hostile templates (the freezes reported against the server) rendered with the default
   limits: which limit stopped each and how long it took (the time limit is 2 s).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from jinja2 import DictLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from promptctl.registry.errors import RenderLimitExceeded
from promptctl.registry.prompts.library import PromptLibrary
from promptctl.registry.prompts.rendering import (
    compile_body,
    has_message_blocks,
    make_environment,
    render_compiled,
)
from promptctl.registry.prompts.variables import validate_variables

ROOT = Path(__file__).resolve().parent.parent
BOMBS = {
    "9 ** 200000000": "{{ (9**200000000) > 1 }}",
    "'a' * 10**9": "{{ 'a' * 10**9 }}",
    "doubling a string": "{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "nested loops": "{% for i in range(100000) %}{% for j in range(100000) %}"
    "{% endfor %}{% endfor %}",
    "branching macro": "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}"
    "{% endmacro %}{{ f(40) }}",
    "literal text in a loop": "{% for i in range(100000) %}" + "x" * 80 + "{% endfor %}",
}


def per_call(function, calls: int, repeat: int = 5) -> float:
    """Best of `repeat` runs, in microseconds per call."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


def plain_render(version, sample):
    """The same template and partials in a plain sandbox: the baseline."""
    files = version.files()
    env = SandboxedEnvironment(
        loader=DictLoader(files), undefined=StrictUndefined, trim_blocks=True,
        lstrip_blocks=True, keep_trailing_newline=True,
        extensions=["promptctl.registry.prompts.rendering.MessageExtension"],
    )
    template = env.from_string(version.prompt.padded_body())

    # The message block needs its collector, so this runs through our runner too; what
    # differs is the environment: no guards, folding on, no output counting.
    def render():
        values = validate_variables(version.name, version.prompt.inputs, sample)
        return render_compiled(
            template, values, chat=version.is_chat, repo_path=version.prompt.path
        )

    return render


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()

    library = PromptLibrary(ROOT)
    print(f"1. Example prompts, first sample, best of 5 x {args.calls} calls (us per call)")
    print(f"   {'prompt':24} {'bounded':>9} {'plain':>9} {'ratio':>6}")
    ratios = []
    for name in library.snapshot("HEAD").names():
        version = library.get(name, "HEAD")
        if not version.prompt.samples:
            continue
        sample = version.prompt.samples[0]
        version.render(sample)
        bounded = per_call(lambda v=version, s=sample: v.render(s), args.calls)
        plain = per_call(plain_render(version, sample), args.calls)
        ratios.append(bounded / plain)
        print(f"   {name:24} {bounded:9.1f} {plain:9.1f} {bounded / plain:6.2f}x")
    print(f"   median ratio {statistics.median(ratios):.2f}x")

    print("\n2. Hostile templates with the default limits")
    env = make_environment(lambda _: None, lambda relpath: relpath)
    for label, body in BOMBS.items():
        start = time.perf_counter()
        template = compile_body(env, body, repo_path="bomb.prompt")
        try:
            render_compiled(
                template, {}, chat=has_message_blocks(body), repo_path="bomb.prompt"
            )
            outcome = "rendered (not stopped!)"
        except RenderLimitExceeded as exc:
            outcome = f"stopped by {exc.limit}"
        print(f"   {label:24} {outcome:32} {time.perf_counter() - start:8.3f} s")


if __name__ == "__main__":
    main()
