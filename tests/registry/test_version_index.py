"""Numbering one prompt alone gives what numbering every prompt gives, and lint's shortcuts."""

from __future__ import annotations

import random

from promptctl.registry.prompts.lint import lint_library
from promptctl.registry.prompts.rendering import make_environment, render_template
from promptctl.registry.prompts.versions import VersionIndex, build_index

PARTIALS = ["tone", "style", "legal", "outer"]


def body(n: int, rev: int, includes: list[str]) -> str:
    lines = [f"Prompt {n} revision {rev}."]
    lines += [f'{{% include "partials/{p}.j2" %}}' for p in includes]
    return "\n".join(lines) + "\n"


def partial(name: str, rev: int, includes: list[str]) -> str:
    lines = [f"{name} revision {rev}"]
    lines += [f"{{% include '{p}' %}}" for p in includes]
    return "\n".join(lines) + "\n"


def as_values(index: VersionIndex, name: str) -> tuple[list, list]:
    versions = [(r.number, r.digest, r.commit.sha) for r in index.versions.get(name, [])]
    events = [(e.commit.sha, e.digest, e.number) for e in index.events.get(name, [])]
    return versions, events


def build_history(repo) -> None:
    """A seeded history: prompt and partial edits, include changes (nested, missing, a
    cycle, `./` paths), removals, re-additions, reverts, unrelated commits and a merge."""
    rng = random.Random(3)
    repo.commit("start", {
        **{f"prompts/p{n}.prompt": body(n, 0, [PARTIALS[n % 4]]) for n in range(5)},
        **{f"prompts/partials/{p}.j2": partial(p, 0, []) for p in PARTIALS},
    })
    for step in range(36):
        rev = step + 1
        n = rng.randrange(6)  # p5 appears later
        kind = step % 9
        if kind == 0:
            repo.commit(f"edit partial {step}", {
                f"prompts/partials/{rng.choice(PARTIALS)}.j2": partial("x", rev, []),
            })
        elif kind == 1:
            repo.commit(f"nest {step}", {
                "prompts/partials/outer.j2": partial("outer", rev, ["./partials/tone.j2"]),
                "prompts/partials/tone.j2": partial("tone", rev, ["partials/outer.j2"]),
            })
        elif kind == 2:
            includes = rng.sample(PARTIALS + ["gone"], 2)
            repo.commit(f"includes {step}", {f"prompts/p{n}.prompt": body(n, rev, includes)})
        elif kind == 3 and (repo.path / f"prompts/p{n}.prompt").exists():
            repo.remove(f"prompts/p{n}.prompt")
            repo.commit(f"remove p{n}")
        elif kind == 4:
            repo.commit(f"docs {step}", {"README.md": f"rev {rev}\n"})
        elif kind == 5 and step > 10:
            repo.git("revert", "--no-edit", "HEAD~1")
        elif kind == 6:
            repo.commit(f"add gone {step}", {"prompts/partials/gone.j2": partial("gone", rev, [])})
        else:
            repo.commit(f"edit p{n} {step}", {f"prompts/p{n}.prompt": body(n, rev, ["style"])})
    repo.git("checkout", "-q", "-b", "feature")
    repo.commit("side one", {"prompts/p1.prompt": body(1, 900, ["legal"])})
    repo.commit("side two", {"prompts/partials/legal.j2": partial("legal", 901, [])})
    repo.git("checkout", "-q", "main")
    repo.commit("main meanwhile", {"prompts/p2.prompt": body(2, 902, ["tone"])})
    repo.git("merge", "-q", "--no-ff", "--no-edit", "feature")
    repo.commit("after merge", {"prompts/partials/tone.j2": partial("tone", 903, [])})


def test_numbering_one_prompt_gives_what_numbering_every_prompt_gives(git_repo, make_library):
    build_history(git_repo)
    library = make_library(git_repo)
    tip = library.tracked_tip()
    every = build_index(library.store, library.layout, "main", tip)
    names = sorted(every.events)
    assert len(names) == 6
    assert every.names is None
    some = build_index(library.store, library.layout, "main", tip, names)
    for name in names:
        alone = build_index(library.store, library.layout, "main", tip, [name])
        assert alone.names == {name}
        assert as_values(alone, name) == as_values(every, name), name
        assert as_values(some, name) == as_values(every, name), name


def test_the_library_numbers_one_prompt_alone_until_asked_about_another(git_repo, make_library):
    build_history(git_repo)
    library = make_library(git_repo, persistent=False)  # no stored index to answer from
    records, index = library.history("p1")
    assert index.names == {"p1"}
    assert library.index("p1") is index
    assert library.get("p1").number == records[-1].number
    every = library.index("p2")
    assert every.names is None
    assert library.index("p1") is every
    assert [r.digest for r in every.versions["p1"]] == [r.digest for r in records]


def test_a_partial_is_analysed_once_but_judged_for_each_prompt_that_includes_it(
    git_repo, make_library
):
    header = "---\ninput:\n  x: string\nsamples:\n  - {x: a}\n---\n"
    git_repo.commit("prompts", {
        "prompts/binds.prompt": header
        + '{{ x }}{% for item in [1] %}{% include "partials/p.j2" %}{% endfor %}\n',
        "prompts/plain.prompt": header + '{{ x }}{% include "partials/p.j2" %}\n',
        "prompts/partials/p.j2": "\nItem {{ item }}\n",
    })
    findings = lint_library(make_library(git_repo))
    assert [(f.path, f.line, f.code, f.prompt) for f in findings] == [
        ("prompts/partials/p.j2", 2, "undeclared-variable", "plain"),
    ]


def test_environments_share_compiled_partials_only_for_the_very_same_text():
    def render(text: str) -> str:
        env = make_environment({"p.j2": text}.get, lambda name: f"prompts/{name}")
        rendered = render_template(env, '{% include "p.j2" %}', {}, chat=False, repo_path="x")
        return rendered.text or ""

    assert render("one") == "one"
    assert render("two") == "two"
    assert render("one") == "one"
