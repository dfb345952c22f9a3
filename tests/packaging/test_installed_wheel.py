"""promptctl as users get it: the wheel and sdist built, installed into fresh virtualenvs
outside the checkout, and driven only through what the install provides.

- The build runs once per test session (`dists`) on a copy of the checkout's files as git
  sees them (tracked, plus untracked files that are not ignored), so ignored leftovers
  (`build/`, `*.egg-info`, `.venv`) can never slip into the wheel and the build writes
  nothing into the shared checkout. `python -m build` makes the sdist and the wheel; a
  second wheel is built from the unpacked sdist and must hold the same files.
- Two virtualenvs per module, under pytest's temporary directory: `full` gets the wheel
  with the `cli` extra (the command, the server, the database), `light` the wheel alone
  (the runtime client: httpx, Jinja2, PyYAML). pip may use its cache and the index.
- Every subprocess runs with its working directory outside the checkout and a clean
  environment (PATH without the dev venv, no PYTHONPATH, no PROMPTCTL_*, a HOME of its
  own with a git identity), so nothing of the checkout can leak in; the installed
  `promptctl.__file__` is checked to be in the venv's site-packages.

`pytest -s tests/packaging` prints the wheel and sdist sizes, the install times and the
smoke flow's duration; no assertion is made on time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from support import ServeProcess

pytestmark = pytest.mark.slow

CHECKOUT = Path(__file__).resolve().parents[2]
PACKAGE_FOLDERS = ("registry", "server", "cli", "client", "migrations")
COMMAND_LIBRARIES = ("pygit2", "sqlalchemy", "alembic", "psycopg", "fastapi", "uvicorn", "click")
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Packaging Test",
    "GIT_AUTHOR_EMAIL": "packaging@example.com",
    "GIT_COMMITTER_NAME": "Packaging Test",
    "GIT_COMMITTER_EMAIL": "packaging@example.com",
}

# Read at import, before any fixture isolates HOME: what a user's shell would hand to pip
# (its configuration, cache, certificates and proxies). Nothing else of this environment
# reaches a subprocess.
_PASSED_ON = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR",
              "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
_OUTSIDE = {
    key: value
    for key, value in os.environ.items()
    if key in _PASSED_ON or key.startswith("PIP_") or key.lower().endswith("_proxy")
}
_USER_HOME = os.environ.get("HOME", str(Path.home()))


def _outside_checkout(entry: str) -> bool:
    return not Path(entry).resolve().is_relative_to(CHECKOUT)


def clean_env(home: str, bin_dir: Path | None = None) -> dict[str, str]:
    """A minimal environment: PATH without anything inside the checkout, `bin_dir` first."""
    path = [p for p in _OUTSIDE.get("PATH", os.defpath).split(os.pathsep) if p]
    path = [p for p in path if _outside_checkout(p)]
    if bin_dir is not None:
        path.insert(0, str(bin_dir))
    return {**_OUTSIDE, "PATH": os.pathsep.join(path), "HOME": home}


def run(
    command: list[str | Path], *, cwd: Path, env: dict[str, str], timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run a command outside the checkout; return what it did (the caller asserts)."""
    assert _outside_checkout(str(cwd)), f"{cwd} is inside the checkout"
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    """Fail the test with the command's output unless it exited 0."""
    assert result.returncode == 0, (
        f"{' '.join(result.args)} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    return result


# -- the build -----------------------------------------------------------------------


@dataclass(frozen=True)
class Dists:
    source: Path
    wheel: Path
    sdist: Path
    wheel_from_sdist: Path

    def wheel_names(self, wheel: Path | None = None) -> list[str]:
        with zipfile.ZipFile(wheel or self.wheel) as archive:
            return sorted(archive.namelist())

    def wheel_text(self, member: str) -> str:
        with zipfile.ZipFile(self.wheel) as archive:
            return archive.read(member).decode()


def copy_working_tree(target: Path) -> None:
    """Copy the files git sees in the checkout: tracked, and untracked but not ignored."""
    listed = ok(
        run(
            ["git", "-C", CHECKOUT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=target.parent,
            env=clean_env(_USER_HOME),
        )
    ).stdout
    for relpath in filter(None, listed.split("\0")):
        source = CHECKOUT / relpath
        if source.is_file():  # a tracked file deleted in the working tree is not there
            destination = target / relpath
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


def build(*args: str | Path, cwd: Path) -> None:
    ok(run([sys.executable, "-m", "build", *args], cwd=cwd, env=clean_env(_USER_HOME)))


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """The sdist and wheel of this checkout, and a wheel built again from the sdist."""
    work = tmp_path_factory.mktemp("dists")
    source = work / "source"
    copy_working_tree(source)
    started = time.perf_counter()
    build("--sdist", "--wheel", "--outdir", work / "dist", source, cwd=work)
    (sdist,) = (work / "dist").glob("*.tar.gz")
    (wheel,) = (work / "dist").glob("*.whl")
    with tarfile.open(sdist) as archive:
        archive.extractall(work / "unpacked", filter="data")
    (unpacked,) = (work / "unpacked").iterdir()
    build("--wheel", "--outdir", work / "from-sdist", unpacked, cwd=work)
    (wheel_from_sdist,) = (work / "from-sdist").glob("*.whl")
    print(
        f"\n[packaging] wheel {wheel.name}: {wheel.stat().st_size / 1024:.1f} KiB; "
        f"sdist {sdist.name}: {sdist.stat().st_size / 1024:.1f} KiB; "
        f"both builds {time.perf_counter() - started:.1f} s"
    )
    return Dists(source, wheel, sdist, wheel_from_sdist)


def test_the_wheel_installs_one_top_level_package_promptctl(dists):
    names = dists.wheel_names()
    top = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top == {"promptctl"}
    (record,) = [n for n in names if n.endswith(".dist-info/RECORD")]
    recorded = sorted(line.split(",")[0] for line in dists.wheel_text(record).splitlines() if line)
    assert recorded == names
    (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")]
    assert dists.wheel_text(top_level).split() == ["promptctl"]


def test_the_wheel_holds_every_file_of_the_package_folders(dists):
    names = set(dists.wheel_names())
    assert {"promptctl/__init__.py", "promptctl/__main__.py"} <= names
    assert "promptctl/migrations/script.py.mako" in names
    migrations = sorted((CHECKOUT / "migrations" / "versions").glob("[0-9]*.py"))
    assert migrations, "no migration versions in the checkout?"
    for migration in migrations:
        assert f"promptctl/migrations/versions/{migration.name}" in names
    expected = {
        f"promptctl/{path.relative_to(dists.source).as_posix()}"
        for folder in PACKAGE_FOLDERS
        for path in (dists.source / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    # The packages are listed one by one in pyproject.toml ([tool.setuptools] packages):
    # a new subpackage, or a data file without a package-data pattern, shows up here.
    assert sorted(expected - names) == [], "in the source but not in the wheel"



def test_the_sdist_builds_the_same_wheel(dists):
    from_tree = dists.wheel_names()
    from_sdist = dists.wheel_names(dists.wheel_from_sdist)
    assert dists.wheel_from_sdist.name == dists.wheel.name
    assert sorted(set(from_tree) ^ set(from_sdist)) == []


def test_the_wheel_declares_the_light_client_and_the_cli_extra(dists):
    (metadata,) = [n for n in dists.wheel_names() if n.endswith(".dist-info/METADATA")]
    requires = [
        line.removeprefix("Requires-Dist: ")
        for line in dists.wheel_text(metadata).splitlines()
        if line.startswith("Requires-Dist: ")
    ]
    base = [r.split(">")[0].strip().lower() for r in requires if "extra" not in r]
    assert sorted(base) == ["httpx", "jinja2", "pyyaml"]
    assert any(r.startswith("pygit2") and 'extra == "cli"' in r for r in requires)


# -- the installs --------------------------------------------------------------------


class Venv:
    """A virtualenv under tmp with promptctl installed from the wheel."""

    def __init__(self, path: Path, home: Path) -> None:
        self.path = path
        self.bin = path / "bin"
        self.python = self.bin / "python"
        self.home = home
        self.install_seconds = 0.0

    def create(self, requirement: str) -> Venv:
        started = time.perf_counter()
        env = clean_env(_USER_HOME)
        ok(run([sys.executable, "-m", "venv", self.path], cwd=self.path.parent, env=env))
        ok(
            run(
                [self.python, "-m", "pip", "install", "--quiet", requirement],
                cwd=self.path.parent,
                env=clean_env(_USER_HOME, self.bin),
            )
        )
        self.install_seconds = time.perf_counter() - started
        return self

    def env(self) -> dict[str, str]:
        """What the installed commands run with: this venv first, an isolated HOME and git."""
        return {
            **clean_env(str(self.home), self.bin),
            **GIT_IDENTITY,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "PYTHONUNBUFFERED": "1",
        }

    def run(self, *command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
        return run(list(command), cwd=cwd, env=self.env(), timeout=120)

    def promptctl(self, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
        return self.run(self.bin / "promptctl", *args, cwd=cwd)

    def site_packages(self) -> Path:
        (found,) = self.path.glob("lib/python3*/site-packages")
        return found


def make_venv(tmp_path_factory: pytest.TempPathFactory, name: str, requirement: str) -> Venv:
    base = tmp_path_factory.mktemp(name)
    assert _outside_checkout(str(base))
    home = base / "home"
    home.mkdir()
    venv = Venv(base / "venv", home).create(requirement)
    print(f"\n[packaging] venv '{name}' ({requirement}): {venv.install_seconds:.1f} s to install")
    return venv


@pytest.fixture(scope="module")
def full(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """The wheel with the `cli` extra: what an operator installs."""
    return make_venv(tmp_path_factory, "full", f"{dists.wheel}[cli]")


@pytest.fixture(scope="module")
def light(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """The wheel alone: what an application installs."""
    return make_venv(tmp_path_factory, "light", str(dists.wheel))


# -- the server ----------------------------------------------------------------------


@pytest.fixture
def start_server() -> Iterator[Callable[[Venv, Path], ServeProcess]]:
    """Start `promptctl serve --port 0` from an installed venv (its port read back from its
    log); every one is stopped after the test."""
    servers: list[ServeProcess] = []

    def start(venv: Venv, repo: Path) -> ServeProcess:
        command = [str(venv.bin / "promptctl"), "serve", "--port", "0", "--log-level", "info"]
        server = ServeProcess(command, cwd=repo, env=venv.env())
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# An application: what `pip install promptctl` users write. argv: server, env, prompt, track?
APPLICATION = """\
import json, sys
import promptctl
from promptctl import PromptClient

server, environment, name, track = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "track"
client = PromptClient(server, environment=environment, cache_dir="prompt-cache")
prompt = client.get(name, key="user-42")
messages = prompt.render(user_name="Ada")
if track:
    with client.track(prompt) as call:
        call.record(input_tokens=12, output_tokens=5)
client.close()
print(json.dumps({
    "file": promptctl.__file__,
    "label": prompt.label,
    "digest": prompt.digest,
    "source": prompt.source,
    "messages": messages,
    "sent": client.stats.events_sent,
    "pending": client.stats.events_pending,
    "loaded": sorted(m for m in ("pygit2", "sqlalchemy", "alembic", "fastapi") if m in sys.modules),
}))
"""


def test_the_installed_wheel_runs_the_whole_flow(full, light, start_server, tmp_path):
    """git init → init → commit → lint → review → db upgrade → promote → bundle → serve →
    resolve over HTTP → the client renders and tracks → metrics count the event; then an
    application with the light install reads the same server."""
    assert _outside_checkout(str(tmp_path))
    work = tmp_path / "smoke"
    work.mkdir()
    repo = work / "prompts-repo"
    started = time.perf_counter()

    ok(full.run("git", "init", "-q", "-b", "main", repo, cwd=work))
    initialised = json.loads(ok(full.promptctl("init", "--json", cwd=repo)).stdout)
    assert "prompts/hello.prompt" in initialised["written"]
    ok(full.run("git", "add", "-A", cwd=repo))
    ok(full.run("git", "commit", "-q", "-m", "promptctl init", cwd=repo))
    assert "0 error(s)" in ok(full.promptctl("lint", cwd=repo)).stdout

    hello = repo / "prompts" / "hello.prompt"
    hello.write_text(hello.read_text().replace("Say hello to", "Warmly say hello to"))
    ok(full.run("git", "commit", "-q", "-am", "hello: warmer", cwd=repo))
    review = json.loads(
        ok(full.promptctl("review", "--base", "HEAD~1", "--head", "HEAD", "--format", "json",
                          cwd=repo)).stdout
    )
    assert review["summary"]["changed"] == 1
    assert review["summary"]["breaking"] == 0
    (changed,) = review["prompts"]
    assert (changed["prompt"], changed["old"]["label"], changed["new"]["label"]) == (
        "hello", "v1", "v2",
    )
    assert "+Warmly say hello to" in changed["body_diff"]

    newest = sorted((Path(__file__).parents[2] / "migrations" / "versions").glob("0*.py"))[-1]
    assert newest.name[:4] in ok(full.promptctl("db", "upgrade", cwd=repo)).stdout
    assert (repo / ".promptctl" / "registry.db").is_file()
    promoted = ok(full.promptctl("promote", "hello", "--env", "development", cwd=repo)).stdout
    assert "hello: v2" in promoted
    assert "stable in development" in promoted
    bundle_file = work / "prompts.bundle.json"
    ok(full.promptctl("bundle", "--env", "development", "-o", bundle_file, cwd=repo))
    bundle = json.loads(bundle_file.read_text())
    assert bundle["format"] == "promptctl-bundle/1"
    digest = bundle["releases"]["hello"]["stable"]["digest"]

    server = start_server(full, repo)
    url = server.wait_started()
    assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    resolved = httpx.get(f"{url}/v1/prompts/hello/resolve",
                         params={"env": "development", "key": "user-42"}, timeout=10)
    assert resolved.status_code == 200, resolved.text
    assert (resolved.json()["label"], resolved.json()["digest"]) == ("v2", digest)

    application = work / "app.py"
    application.write_text(APPLICATION)
    tracked = full.run(full.python, application, url, "development", "hello", "track", cwd=work)
    answer = json.loads(ok(tracked).stdout)
    assert Path(answer["file"]).is_relative_to(full.site_packages())
    assert (answer["label"], answer["digest"], answer["source"]) == ("v2", digest, "server")
    assert answer["messages"][-1] == {"role": "user", "content": "Warmly say hello to Ada."}
    assert (answer["sent"], answer["pending"]) == (1, 0)
    # The client loads no git, database or server library (click it may: httpx imports it
    # when it is installed, for httpx's own command line).
    assert answer["loaded"] == []

    summary = json.loads(
        ok(full.promptctl("metrics", "hello", "--env", "development", "--json", cwd=repo)).stdout
    )
    (row,) = summary["versions"]
    assert (row["digest"], row["count"]) == (digest, 1)
    table = ok(full.promptctl("metrics", "hello", "--env", "development", cwd=repo)).stdout
    assert "hello in development" in table

    light_answer = json.loads(
        ok(light.run(light.python, application, url, "development", "hello", "no", cwd=work)).stdout
    )
    assert Path(light_answer["file"]).is_relative_to(light.site_packages())
    assert (light_answer["label"], light_answer["digest"]) == ("v2", digest)
    assert light_answer["messages"] == answer["messages"]
    assert light_answer["loaded"] == []

    print(f"\n[packaging] smoke flow (git init … metrics, light client): "
          f"{time.perf_counter() - started:.1f} s")


def test_python_dash_m_promptctl_runs_the_command_in_the_full_install(full, tmp_path):
    shown = ok(full.run(full.python, "-m", "promptctl", "--version", cwd=tmp_path)).stdout
    assert "0.1.0" in shown
    assert ok(full.promptctl("--help", cwd=tmp_path)).stdout.startswith("Usage: promptctl")


def test_the_light_install_has_the_client_and_none_of_the_command_libraries(light, tmp_path):
    probe = (
        "import importlib.util, json, promptctl, promptctl.client\n"
        "from promptctl import AsyncPromptClient, PromptClient\n"
        f"missing = [m for m in {COMMAND_LIBRARIES!r} if importlib.util.find_spec(m) is None]\n"
        "print(json.dumps({'file': promptctl.__file__, 'missing': missing}))\n"
    )
    found = json.loads(ok(light.run(light.python, "-c", probe, cwd=tmp_path)).stdout)
    assert Path(found["file"]).is_relative_to(light.site_packages())
    assert found["missing"] == list(COMMAND_LIBRARIES)


def test_the_command_on_the_light_install_says_to_install_the_cli_extra(light, tmp_path):
    result = light.promptctl("list", cwd=tmp_path)
    assert result.returncode == 1
    assert "pip install 'promptctl[cli]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_python_dash_m_promptctl_on_the_light_install_says_to_install_the_cli_extra(
    light, tmp_path
):
    result = light.run(light.python, "-m", "promptctl", "list", cwd=tmp_path)
    assert result.returncode == 1
    assert "pip install 'promptctl[cli]'" in result.stderr
    assert "Traceback" not in result.stderr
