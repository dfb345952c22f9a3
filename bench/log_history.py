"""Benchmark `promptctl log`, `list` and `lint` on a long, generated prompt history.

The repository is written with pygit2 directly (blobs, trees and commits, no git CLI, no
working-tree churn), then packed once with `git gc` as a real clone would be, and checked
out so that `list` and `lint` see a working tree. Its shape:

- `--commits` commits (default 5000) on `main`, touching `--prompts` prompts (default 300)
  at `prompts/group_NN/prompt_NNN.prompt` (YAML front matter, a chat body, samples);
- 10 partials in `prompts/partials/`, some including others, each included by many
  prompts, and changed by some commits (so one commit moves many prompts' digests);
- commits that touch only files outside `prompts/` (`src/`, `docs/`), reverts to earlier
  content, include changes, removals and re-additions, prompts added over time;
- a side branch merged into `main` every ~200 commits (versions made there are numbered
  at the merge, along the first-parent history).

The repository is cached: at `--path` if given, otherwise in the temp folder under a name
derived from its parameters, and reused while its parameters match (`--regenerate` to
rebuild). Generating 5,000 commits takes a few seconds.

Measured (wall-clock median and min, and CPU median, of `--runs` runs after a warm-up run):

- baseline  `git log --first-parent --oneline -- prompts/<the prompt's file>`
- startup   `promptctl --version` (interpreter start and CLI imports: any command's floor)
- log       `promptctl log NAME`, end to end, as a subprocess of the installed promptctl
- history   `PromptLibrary(path).history(NAME)` in process, cold (a fresh library; no imports)
- first     `promptctl log NAME` with no version index yet (it walks the whole history
            and stores the index under .git/promptctl/); every other figure is warm
- list      `promptctl list` (every prompt, with its version number)
- status    `promptctl status` (the release database, and the prompts it knows)
- lint      `promptctl lint` (every prompt, every sample rendered)

Goals: `log`, `list` and `status` in under a second warm, on 100,000 commits and 1,000
prompts too (`--large`, written with `git fast-import`); `lint` of a few hundred prompts in
a couple of seconds. Figures are printed with their ratio to the baseline; nothing is asserted.

Usage:

    .venv/bin/python bench/log_history.py                      # as `make bench` runs it
    .venv/bin/python bench/log_history.py --path /tmp/big --runs 7
    .venv/bin/python bench/log_history.py --name group_03/prompt_095 --json out.json
    .venv/bin/python bench/log_history.py --commits 20000 --prompts 1000 --regenerate
    .venv/bin/python bench/log_history.py --generate-only --path /tmp/big
    .venv/bin/python bench/log_history.py --large --runs 3      # 100,000 commits

To measure another checkout of promptctl (say, before a change) with the same installed
environment, put it first on the path: `PYTHONPATH=/tmp/old .venv/bin/python bench/...`
(the subprocesses inherit it, and the editable install yields to it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pygit2

GENERATOR_VERSION = 1
MARKER = "promptctl-bench.json"
ROOT = "prompts"
BRANCH = "main"
DEFAULT_NAME = "group_00/prompt_000"
PARTIALS = [
    "tone",
    "style",
    "persona",
    "safety",
    "legal",
    "format_json",
    "glossary",
    "examples",
    "locale",
    "footer",
]
# A partial may include partials after it in this list only, so there is never a cycle.
PARTIAL_INCLUDES = {"persona": ["tone"], "safety": ["legal"], "footer": []}
AUTHORS = [
    ("Ada Lovelace", "ada@example.com"),
    ("Grace Hopper", "grace@example.com"),
    ("Alan Turing", "alan@example.com"),
    ("Barbara Liskov", "barbara@example.com"),
    ("Edsger Dijkstra", "edsger@example.com"),
]
MODELS = ["gpt-4o-mini", "gpt-4o", "claude-3-5-haiku", "llama-3.1-8b"]
TREE = pygit2.GIT_FILEMODE_TREE
BLOB = pygit2.GIT_FILEMODE_BLOB


# -- the repository ---------------------------------------------------------------------


class Files:
    """A commit's tree as nested folders; only changed folders are written again."""

    def __init__(self, repo: pygit2.Repository) -> None:
        self.repo = repo
        self.dirs: dict[str, dict[str, tuple[pygit2.Oid, int]]] = {"": {}}
        self.dirty: set[str] = {""}
        self.blobs: dict[bytes, pygit2.Oid] = {}
        self.root: pygit2.Oid | None = None

    def copy(self) -> Files:
        other = Files.__new__(Files)
        other.repo = self.repo
        other.dirs = {k: dict(v) for k, v in self.dirs.items()}
        other.dirty = set(self.dirty)
        other.blobs = self.blobs
        other.root = self.root
        return other

    def has(self, path: str) -> bool:
        folder, _, leaf = path.rpartition("/")
        return leaf in self.dirs.get(folder, {})

    def put(self, path: str, data: bytes) -> None:
        oid = self.blobs.get(data)
        if oid is None:
            oid = self.blobs[data] = self.repo.create_blob(data)
        folder, _, leaf = path.rpartition("/")
        self._ensure(folder)
        self.dirs[folder][leaf] = (oid, BLOB)
        self._touch(folder)

    def remove(self, path: str) -> None:
        folder, _, leaf = path.rpartition("/")
        self.dirs[folder].pop(leaf, None)
        self._touch(folder)

    def _ensure(self, folder: str) -> None:
        if folder in self.dirs:
            return
        parent, _, leaf = folder.rpartition("/")
        self._ensure(parent)
        self.dirs[folder] = {}
        self.dirs[parent][leaf] = (None, TREE)  # type: ignore[assignment]

    def _touch(self, folder: str) -> None:
        while True:
            self.dirty.add(folder)
            if not folder:
                return
            folder = folder.rpartition("/")[0]

    def write(self) -> pygit2.Oid:
        """Write the changed folders, deepest first, and return the root tree id."""
        for folder in sorted(self.dirty, key=lambda f: -(f.count("/") + 1 if f else 0)):
            builder = self.repo.TreeBuilder()
            for leaf, (oid, mode) in self.dirs[folder].items():
                builder.insert(leaf, oid, mode)
            tree = builder.write()
            if folder:
                parent, _, leaf = folder.rpartition("/")
                self.dirs[parent][leaf] = (tree, TREE)
            else:
                self.root = tree
        self.dirty.clear()
        assert self.root is not None
        return self.root


class FastFiles:
    """The same interface as Files, for `git fast-import`: changes since the last commit
    are kept as fast-import file commands, written with the next commit."""

    def __init__(self) -> None:
        self.paths: set[str] = set()
        self.ops: list[bytes] = []
        self.dirty = False

    def copy(self) -> FastFiles:
        other = FastFiles()
        other.paths = set(self.paths)
        return other

    def has(self, path: str) -> bool:
        return path in self.paths

    def put(self, path: str, data: bytes) -> None:
        self.paths.add(path)
        self.ops.append(b"M 100644 inline %s\ndata %d\n%s\n" % (path.encode(), len(data), data))
        self.dirty = True

    def remove(self, path: str) -> None:
        self.paths.discard(path)
        self.ops.append(b"D %s\n" % path.encode())
        self.dirty = True

    def take(self) -> bytes:
        out = b"".join(self.ops)
        self.ops.clear()
        self.dirty = False
        return out


class Generator:
    """Writes the synthetic history; every choice comes from one seeded random source."""

    def __init__(
        self, path: Path, commits: int, prompts: int, seed: int, stream: Any = None
    ) -> None:
        self.repo = pygit2.init_repository(str(path), initial_head=BRANCH)
        # With `stream` (git fast-import's stdin) commits are written there, as marks.
        self.stream = stream
        self.commits = commits
        self.prompts = prompts
        self.rng = random.Random(seed)
        self.clock = 1_640_995_200  # 2022-01-01
        self.count = 0
        # Per prompt: the states it has had, as (revision, includes); the last is current.
        self.states: dict[int, list[tuple[int, tuple[str, ...]]]] = {}
        self.partial_rev = dict.fromkeys(PARTIALS, 0)
        self.partial_extra: dict[str, tuple[str, ...]] = {p: () for p in PARTIALS}
        self.removed: set[int] = set()
        self.outside_rev = 0

    # content ---------------------------------------------------------------------------

    @staticmethod
    def prompt_path(i: int) -> str:
        return f"{ROOT}/group_{i // 30:02d}/prompt_{i:03d}.prompt"

    def prompt_text(self, i: int, rev: int, includes: tuple[str, ...]) -> bytes:
        rng = random.Random(i * 100_003 + rev)
        model = MODELS[(i + rev) % len(MODELS)]
        lines = [
            "---",
            f"description: Handle task {i:03d} of group {i // 30:02d} (revision {rev})",
            f"model: {model}",
            f"params: {{temperature: 0.{rev % 10}, max_tokens: {200 + 50 * (i % 8)}}}",
            "input:",
            "  ticket: {type: string, description: the text to handle}",
            "  tier: {type: string, enum: [free, pro, enterprise], default: free}",
            f"tags: [group_{i // 30:02d}, bench]",
            "samples:",
            f'  - {{ticket: "Sample ticket for task {i}", tier: pro}}',
            '  - {ticket: "Another one"}',
            "---",
            '{% message "system" %}',
            f"You handle task {i:03d} of group {i // 30:02d}. Revision {rev}.",
        ]
        for name in includes:
            lines.append(f'{{% include "partials/{name}.j2" %}}')
        for n in range(rng.randint(4, 12)):
            lines.append(f"- Rule {n + 1}: keep answer {rng.choice(['short', 'exact', 'kind'])}.")
        lines += [
            "The customer is on the {{ tier }} plan.",
            "{% endmessage %}",
            '{% message "user" %}',
            "{{ ticket }}",
            "{% endmessage %}",
            "",
        ]
        return "\n".join(lines).encode()

    def partial_text(self, name: str) -> bytes:
        rev = self.partial_rev[name]
        lines = [f"<!-- {name} revision {rev} -->"]
        lines.append(f"Follow the {name} guidelines of {{{{ product | default('our product') }}}}.")
        for n in range(3 + rev % 4):
            lines.append(f"{name} note {n}: revision {rev}.")
        for inc in PARTIAL_INCLUDES.get(name, []) + list(self.partial_extra[name]):
            lines.append(f'{{% include "partials/{inc}.j2" %}}')
        return ("\n".join(lines) + "\n").encode()

    def initial_includes(self, i: int) -> tuple[str, ...]:
        rng = random.Random(i)
        if i % 10 == 9:
            return ()
        first = PARTIALS[i % 4]  # tone, style, persona, safety: each in many prompts
        others = rng.sample(PARTIALS[4:], rng.randint(0, 2))
        return tuple(dict.fromkeys([first, *others]))

    # edits -------------------------------------------------------------------------------

    def pick_prompt(self) -> int:
        live = [i for i in self.states if i not in self.removed]
        if self.rng.random() < 0.2:  # a few hot prompts change often
            hot = [i for i in live if i < 10]
            if hot:
                return self.rng.choice(hot)
        return self.rng.choice(live)

    def set_prompt(self, files: Files, i: int, state: tuple[int, tuple[str, ...]]) -> None:
        self.states.setdefault(i, []).append(state)
        files.put(self.prompt_path(i), self.prompt_text(i, *state))

    def edit_prompt(self, files: Files, i: int) -> str:
        rev, includes = self.states[i][-1]
        new_rev = max(r for r, _ in self.states[i]) + 1
        self.set_prompt(files, i, (new_rev, includes))
        return f"Reword prompt_{i:03d}"

    def step(self, files: Files) -> str:
        """Apply one random change to `files` and return the commit message."""
        roll = self.rng.random()
        unborn = [i for i in range(self.prompts) if i not in self.states]
        if unborn and (roll < 0.12 or self.count > self.commits * 0.3):
            i = unborn[0]
            self.set_prompt(files, i, (0, self.initial_includes(i)))
            return f"Add prompt_{i:03d}"
        if roll < 0.50:
            picked = {self.pick_prompt() for _ in range(self.rng.randint(1, 3))}
            for i in sorted(picked):
                self.edit_prompt(files, i)
            return f"Reword {', '.join(f'prompt_{i:03d}' for i in sorted(picked))}"
        if roll < 0.58:
            name = self.rng.choice(PARTIALS)
            self.partial_rev[name] += 1
            if name in ("footer", "examples") and self.rng.random() < 0.3:
                self.partial_extra[name] = () if self.partial_extra[name] else ("locale",)
            files.put(f"{ROOT}/partials/{name}.j2", self.partial_text(name))
            return f"Update partial {name}"
        if roll < 0.80:
            self.touch_outside(files)
            return f"Refactor application code ({self.outside_rev})"
        if roll < 0.86:
            self.touch_outside(files)
            i = self.pick_prompt()
            self.edit_prompt(files, i)
            return f"Ship feature {self.outside_rev} with prompt_{i:03d}"
        if roll < 0.90:
            i = self.pick_prompt()
            if len(self.states[i]) > 1:
                self.set_prompt(files, i, self.rng.choice(self.states[i][:-1]))
                return f"Revert prompt_{i:03d} to an earlier wording"
            return self.edit_prompt(files, i)
        if roll < 0.94:
            i = self.pick_prompt()
            rev, includes = self.states[i][-1]
            extra = self.rng.choice(PARTIALS)
            if extra in includes:
                new = tuple(p for p in includes if p != extra)
            else:
                new = (*includes, extra)
            self.set_prompt(files, i, (max(r for r, _ in self.states[i]) + 1, new))
            return f"Change the partials of prompt_{i:03d}"
        if roll < 0.96 and self.removed:
            i = self.removed.pop()
            self.set_prompt(files, i, self.states[i][-1])
            return f"Restore prompt_{i:03d}"
        if roll < 0.97:
            live = [i for i in self.states if i not in self.removed and i >= 10]
            if live:
                i = self.rng.choice(live)
                self.removed.add(i)
                files.remove(self.prompt_path(i))
                return f"Remove prompt_{i:03d}"
        self.touch_outside(files)
        return f"Update docs ({self.outside_rev})"

    def touch_outside(self, files: Files) -> None:
        self.outside_rev += 1
        n = self.outside_rev
        files.put(f"src/app/module_{n % 40:02d}.py", f"VALUE = {n}\n".encode() * (1 + n % 9))
        if n % 3 == 0:
            files.put(f"docs/page_{n % 15:02d}.md", f"# Page\n\nEdit {n}.\n".encode())
        if n % 50 == 0:
            files.put("README.md", f"# Bench repository\n\nRevision {n}.\n".encode())

    def commit(self, files: Any, message: str, parents: list[Any]) -> Any:
        self.clock += self.rng.randint(600, 7200)
        self.count += 1
        name, email = AUTHORS[self.count % len(AUTHORS)]
        if self.stream is not None:
            return self._fast_commit(files, message, parents, f"{name} <{email}>")
        sig = pygit2.Signature(name, email, self.clock, 0)
        return self.repo.create_commit(None, sig, sig, message + "\n", files.write(), parents)

    def _fast_commit(self, files: FastFiles, message: str, parents: list[int], who: str) -> int:
        mark = self.count
        text = (message + "\n").encode()
        head = [b"commit refs/heads/%s\nmark :%d\n" % (BRANCH.encode(), mark)]
        for role in (b"author", b"committer"):
            head.append(b"%s %s %d +0000\n" % (role, who.encode(), self.clock))
        head.append(b"data %d\n%s" % (len(text), text))
        if parents:
            head.append(b"from :%d\n" % parents[0])
        for other in parents[1:]:
            head.append(b"merge :%d\n" % other)
        self.stream.write(b"".join(head) + files.take() + b"\n")
        return mark

    def set_branch(self, branch: str, tip: Any) -> None:
        if self.stream is not None:
            self.stream.write(b"reset refs/heads/%s\nfrom :%d\n\n" % (branch.encode(), tip))
        else:
            self.repo.references.create(f"refs/heads/{branch}", tip, force=True)

    # history ------------------------------------------------------------------------------

    def run(self) -> None:
        files: Any = FastFiles() if self.stream is not None else Files(self.repo)
        files.put("promptctl.toml", f'root = "{ROOT}"\nbranch = "{BRANCH}"\n'.encode())
        files.put("README.md", b"# Bench repository\n")
        for name in PARTIALS:
            files.put(f"{ROOT}/partials/{name}.j2", self.partial_text(name))
        for i in range(min(100, self.prompts)):
            self.set_prompt(files, i, (0, self.initial_includes(i)))
        tip = self.commit(files, "Initial prompts", [])
        side: tuple[Files, pygit2.Oid, int] | None = None
        while self.count < self.commits:
            if side is None and self.count % 200 == 150 and self.count + 60 < self.commits:
                side = (files.copy(), tip, self.count + self.rng.randint(10, 40))
            if side is not None and self.count >= side[2]:
                side_files, side_tip, _ = side
                changed: list[tuple[str, bytes | None]] = []
                for n in range(self.rng.randint(1, 3)):
                    i = self.pick_prompt()
                    rev, includes = self.states[i][-1]
                    state = (max(r for r, _ in self.states[i]) + 1, includes)
                    data = self.prompt_text(i, *state)
                    self.states[i].append(state)
                    side_files.put(self.prompt_path(i), data)
                    message = f"Side work {n} on prompt_{i:03d}"
                    side_tip = self.commit(side_files, message, [side_tip])
                    changed.append((self.prompt_path(i), data))
                for path, data in changed:  # the merge takes the side branch's files
                    files.put(path, data)
                    self.removed.discard(int(path[-10:-7]))
                tip = self.commit(files, "Merge branch 'feature'", [tip, side_tip])
                self.set_branch("feature", side_tip)
                side = None
                continue
            tip = self.commit(files, self.step(files), [tip])
        for i in range(self.prompts):  # every prompt exists at the tip
            if i not in self.states or i in self.removed:
                self.removed.discard(i)
                self.set_prompt(files, i, self.states.get(i, [(0, self.initial_includes(i))])[-1])
        if files.dirty:
            tip = self.commit(files, "Add the remaining prompts", [tip])
        self.set_branch(BRANCH, tip)
        if self.stream is None:
            self.repo.set_head(f"refs/heads/{BRANCH}")
            self.repo.checkout_head(strategy=pygit2.GIT_CHECKOUT_FORCE)


def ensure_repository(args: argparse.Namespace) -> Path:
    """Return the benchmark repository, generating it unless a matching one is cached."""
    params = {
        "generator": GENERATOR_VERSION,
        "commits": args.commits,
        "prompts": args.prompts,
        "seed": args.seed,
        "packed": not args.no_pack,
        "fast_import": args.fast_import,
    }
    if args.path:
        path = Path(args.path).resolve()
    else:
        tag = "-".join(f"{v}" for v in params.values())
        path = Path(tempfile.gettempdir()) / f"promptctl-bench-{tag}"
    marker = path / ".git" / MARKER
    if path.exists():
        found = json.loads(marker.read_text()) if marker.is_file() else None
        if found == params and not args.regenerate:
            print(f"repository: {path} (cached; --regenerate to rebuild)")
            return path
        if found is None and any(path.iterdir()):
            sys.exit(f"{path} exists and was not made by this benchmark; choose another --path")
        if found is not None and not args.regenerate:
            sys.exit(f"{path} was generated with {found}, not {params}; add --regenerate")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    # Every object a tree or commit names was just written: skip libgit2's lookups of them.
    if args.fast_import:
        # One `git fast-import` stream: far faster than writing objects one by one, and it
        # writes a pack (no gc needed); the working tree is checked out after.
        pygit2.init_repository(str(path), initial_head=BRANCH)
        importer = subprocess.Popen(
            ["git", "fast-import", "--quiet", "--done"], cwd=path, stdin=subprocess.PIPE,
            env=_env(),
        )
        assert importer.stdin is not None
        Generator(path, args.commits, args.prompts, args.seed, importer.stdin).run()
        importer.stdin.write(b"done\n")
        importer.stdin.close()
        if importer.wait() != 0:
            sys.exit("git fast-import failed")
        subprocess.run(["git", "checkout", "-q", "-f", BRANCH], cwd=path, check=True, env=_env())
    else:
        pygit2.settings.enable_strict_object_creation(False)
        try:
            Generator(path, args.commits, args.prompts, args.seed).run()
        finally:
            pygit2.settings.enable_strict_object_creation(True)
    written = time.perf_counter() - started
    if not args.no_pack and not args.fast_import:  # a clone is packed, not loose objects
        subprocess.run(["git", "gc", "--quiet", "--prune=now"], cwd=path, check=True, env=_env())
    marker.write_text(json.dumps(params))
    print(
        f"repository: {path} (generated in {written:.1f}s,"
        f" {time.perf_counter() - started:.1f}s with packing)"
    )
    return path


# -- measuring --------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROMPTCTL_")}
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["PAGER"] = "cat"
    return env


Times = tuple[list[float], list[float]]  # wall-clock seconds, CPU seconds (user + system)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(
    argv: list[str], cwd: Path, runs: int, ok: tuple[int, ...] = (0,), warm_up: bool = True
) -> Times:
    """Run a command once to warm up (unless not), then `runs` times; return wall and CPU
    times."""
    walls, cpus = [], []
    first = 1 if warm_up else 0
    for n in range(runs + first):
        cpu = _children_cpu()
        started = time.perf_counter()
        result = subprocess.run(argv, cwd=cwd, env=_env(), capture_output=True)
        elapsed = time.perf_counter() - started
        if result.returncode not in ok:
            sys.exit(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr.decode()}")
        if n >= first:
            walls.append(elapsed)
            cpus.append(_children_cpu() - cpu)
    return walls, cpus


def time_history(path: Path, name: str, runs: int) -> Times:
    """Time PromptLibrary.history() with a fresh library each run (no index cached)."""
    from promptctl.registry.prompts.library import PromptLibrary

    walls, cpus = [], []
    for n in range(runs + 1):
        library = PromptLibrary(path)
        cpu = time.process_time()
        started = time.perf_counter()
        records, _ = library.history(name)
        elapsed = time.perf_counter() - started
        if n:
            walls.append(elapsed)
            cpus.append(time.process_time() - cpu)
    print(f"history: {name} has {len(records)} versions")
    return walls, cpus


def heavy_imports(python: str, cwd: Path) -> list[str]:
    """Return the service libraries that importing the CLI pulls in (none, ideally)."""
    code = (
        "import sys, cli.main\n"
        "heavy = ('fastapi', 'starlette', 'sqlalchemy', 'alembic', 'pydantic', 'uvicorn',"
        " 'httpx', 'psycopg')\n"
        "print(' '.join(m for m in heavy if m in sys.modules))"
    )
    # Run away from the source folder, so `-c` imports the installed package as promptctl does.
    out = subprocess.run([python, "-c", code], cwd=cwd, capture_output=True, text=True, env=_env())
    return out.stdout.split()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--path", help="where the repository is (generated if missing)")
    parser.add_argument("--commits", type=int, default=5000)
    parser.add_argument("--prompts", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--name", default=DEFAULT_NAME, help="the prompt `log` shows")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per figure")
    parser.add_argument("--regenerate", action="store_true", help="rebuild a cached repository")
    parser.add_argument("--no-pack", action="store_true", help="leave objects loose")
    parser.add_argument(
        "--fast-import",
        action="store_true",
        help="write the history with git fast-import (for 100,000 commits: --large)",
    )
    parser.add_argument(
        "--large",
        action="store_true",
        help="100,000 commits and 1,000 prompts, written with git fast-import",
    )
    parser.add_argument("--generate-only", action="store_true")
    parser.add_argument("--json", dest="json_out", help="also write the figures to this file")
    args = parser.parse_args()
    if args.large:
        args.commits, args.prompts, args.fast_import = 100_000, 1_000, True

    path = ensure_repository(args)
    if args.generate_only:
        return
    bindir = Path(sys.executable).parent
    promptctl = str(bindir / "promptctl")
    if not Path(promptctl).exists():
        sys.exit(f"{promptctl} not found: install the project first (make run or pip install -e .)")
    relfile = f"{ROOT}/{args.name}.prompt"
    runs = args.runs

    figures: dict[str, Times] = {}
    # The first run builds the persistent version index (under .git/promptctl/); every
    # figure after it is warm, the index read as it is.
    shutil.rmtree(path / ".git" / "promptctl", ignore_errors=True)
    figures["first"] = time_command([promptctl, "log", args.name], path, 1, warm_up=False)
    figures["baseline"] = time_command(
        ["git", "log", "--first-parent", "--oneline", "--", relfile], path, runs
    )
    figures["startup"] = time_command([promptctl, "--version"], path, runs)
    figures["log"] = time_command([promptctl, "log", args.name], path, runs)
    figures["history"] = time_history(path, args.name, runs)
    figures["list"] = time_command([promptctl, "list"], path, runs)
    figures["status"] = time_command([promptctl, "status"], path, runs)
    figures["lint"] = time_command([promptctl, "lint"], path, runs, ok=(0, 1))

    labels = {
        "first": f"first run: log {args.name}",
        "baseline": "git log --first-parent -- FILE",
        "startup": "promptctl --version",
        "log": f"promptctl log {args.name}",
        "history": "PromptLibrary.history() cold",
        "list": "promptctl list",
        "status": "promptctl status",
        "lint": "promptctl lint",
    }
    goals = {"log": 1.0, "list": 1.0, "status": 1.0, "lint": 2.0}
    base = statistics.median(figures["baseline"][0])
    print(
        f"\n{runs} runs each, in seconds: wall-clock median and min, CPU median (steadier on a"
        " busy machine);\nratio = wall median / baseline wall median"
    )
    print(f"{'':34} {'median':>7} {'min':>7} {'cpu':>7} {'ratio':>7}  goal")
    results = {}
    for key, (walls, cpus) in figures.items():
        median, cpu = statistics.median(walls), statistics.median(cpus)
        goal = goals.get(key)
        verdict = "" if goal is None else ("met" if median <= goal else f"MISSED (<= {goal:g}s)")
        print(
            f"{labels[key]:34} {median:7.3f} {min(walls):7.3f} {cpu:7.3f}"
            f" {median / base:6.1f}x  {verdict}"
        )
        results[key] = {"median": median, "min": min(walls), "cpu": cpu, "ratio": median / base}
    heavy = heavy_imports(sys.executable, path)
    print(f"\nservice libraries imported by the CLI: {', '.join(heavy) or 'none'}")
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps({"repository": str(path), "name": args.name, "figures": results}, indent=2)
        )


if __name__ == "__main__":
    main()
