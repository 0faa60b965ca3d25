"""Baked projects keep up with the template through cruft (the generated docs/updates.md).

`cruft update` renders the template twice with the answers in the project's .cruft.json, at the
commit the project was made from and at the newest one, and merges the difference into the
project with `git apply -3`. That holds only while a bake depends on nothing but the answers (the
hooks use no network, git or uv) and the option names stay the same (README: "Keep projects up
to date"). cruft clones the template with git, so it sees commits only: each test works on a
temporary git copy of the template as it is on disk, and makes the template's next commits there.
"""

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from .conftest import COMBINATIONS, DOCS_NEW_JOBS, TEMPLATE_ROOT, Combination, tool_environment

CRUFT = Path(sys.executable).parent / "cruft"
COOKIECUTTER = Path(sys.executable).parent / "cookiecutter"
TEMPLATE_PROJECT = "{{cookiecutter.project_slug}}"
TEMPLATE_PACKAGE = TEMPLATE_PROJECT + "/src/{{cookiecutter.package_name}}"
[DEFAULT] = [c for c in COMBINATIONS if c.cache_backend == "redis" and not c.extra]

# A committer for the test repositories, whatever the machine's git configuration says.
GIT_CONFIG = """\
[user]
    name = Template Tests
    email = template-tests@example.com
[init]
    defaultBranch = main
[commit]
    gpgsign = false
"""

# The first line of the template's README.md.
TEMPLATE_TITLE = "# {{ cookiecutter.project_name }}"


@dataclass(frozen=True)
class Shell:
    """Runs commands as a user types them, each printed with its output: pytest shows the
    transcript when a test fails, and `pytest -s` always."""

    environment: dict[str, str]

    def __call__(
        self, *command: str | Path, cwd: Path, expect: int | None = 0
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(part) for part in command],
            cwd=cwd,
            env=self.environment,
            capture_output=True,
            text=True,
        )
        typed = shlex.join([Path(command[0]).name, *map(str, command[1:])])
        print(f"{cwd.name}$ {typed}\n{result.stdout}{result.stderr}[exit {result.returncode}]")
        if expect is not None:
            assert result.returncode == expect, f"{typed}:\n{result.stdout}\n{result.stderr}"
        return result


@pytest.fixture
def shell(tmp_path: Path) -> Shell:
    """A shell whose git, cookiecutter and cruft ignore the machine's own settings, and whose
    git speaks English (the tests read its merge messages)."""
    git_config = tmp_path / "gitconfig"
    git_config.write_text(GIT_CONFIG)
    cookiecutter_config = tmp_path / "cookiecutterrc"
    cookiecutter_config.write_text(
        f"cookiecutters_dir: {tmp_path / 'cookiecutters'}\nreplay_dir: {tmp_path / 'replay'}\n"
    )
    environment = {
        **tool_environment(),
        "GIT_CONFIG_GLOBAL": str(git_config),
        "GIT_CONFIG_NOSYSTEM": "1",
        "COOKIECUTTER_CONFIG": str(cookiecutter_config),
        "LC_ALL": "C",
    }
    return Shell(environment)


def commit(shell: Shell, repository: Path, message: str) -> str:
    """Commit every change in `repository` (creating it the first time); return the commit."""
    if not (repository / ".git").exists():
        shell("git", "init", "--quiet", cwd=repository)
    shell("git", "add", "--all", cwd=repository)
    shell("git", "commit", "--quiet", "--message", message, cwd=repository)
    return head(shell, repository)


def head(shell: Shell, repository: Path) -> str:
    return shell("git", "rev-parse", "HEAD", cwd=repository).stdout.strip()


@pytest.fixture
def template(tmp_path: Path, shell: Shell) -> Path:
    """A git copy of the template as checked out, uncommitted edits included: its commit "A"."""
    copy = tmp_path / "template"
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=TEMPLATE_ROOT,
        capture_output=True,
        check=True,
    )
    for name in listing.stdout.decode().split("\0"):
        source = TEMPLATE_ROOT / name
        if name and source.is_file():  # a tracked file deleted on disk is not in the template
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    commit(shell, copy, "A")
    return copy


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{path.name} no longer has {old!r} once: update this test"
    path.write_text(text.replace(old, new))


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def answers_of(project: Path) -> dict[str, str]:
    answers: dict[str, str] = json.loads((project / ".cookiecutter.json").read_text())
    return answers


def cruft_state(project: Path) -> dict[str, object]:
    state: dict[str, object] = json.loads((project / ".cruft.json").read_text())
    return state


def bake_with_cruft(shell: Shell, template: Path, output: Path, answers: dict[str, str]) -> Path:
    """`cruft create` into `output`, then the project's first commit; returns the project."""
    output.mkdir()
    shell(
        CRUFT,
        "create",
        "--no-input",
        "--extra-context",
        json.dumps(answers),
        "--output-dir",
        output,
        template,
        cwd=output,
    )
    [project] = output.iterdir()
    commit(shell, project, "Generate from the template")
    return project


def unmerged_files(shell: Shell, project: Path) -> list[str]:
    return shell("git", "diff", "--name-only", "--diff-filter=U", cwd=project).stdout.split()


def conflict_leftovers(project: Path) -> list[str]:
    """Files holding merge markers, and the .rej files of cruft's fallback merge."""
    files = [
        path
        for path in project.rglob("*")
        if path.is_file() and not {".git", ".venv"} & set(path.relative_to(project).parts)
    ]
    return [
        str(path.relative_to(project))
        for path in files
        if path.suffix == ".rej" or re.search(r"^<{7} ", path.read_text(errors="replace"), re.M)
    ]


def locked_version(project: Path, distribution: str) -> str:
    lock = tomllib.loads((project / "uv.lock").read_text())
    [version] = [p["version"] for p in lock["package"] if p["name"] == distribution]
    return str(version)


@pytest.mark.slow
def test_an_update_brings_the_template_s_commit_and_keeps_the_user_s_job(
    shell: Shell, template: Path, tmp_path: Path
) -> None:
    # 1. Bake at A, lock and commit as a user does, then add a job to jobs.py.
    project = bake_with_cruft(shell, template, tmp_path / "projects", DEFAULT.context)
    package = answers_of(project)["package_name"]
    shell("uv", "sync", "--quiet", cwd=project)
    commit(shell, project, "Lock")
    jobs = project / "src" / package / "jobs.py"
    append(jobs, DOCS_NEW_JOBS)  # the job and cron job docs/background-tasks.md shows
    commit(shell, project, "Add send_receipt and nightly_cleanup")

    # 2. The template's commit B: a raised pin (to the version the lock already has, so no
    # download), a doc, and code the user never touched.
    pin = f'"pydantic-settings>={locked_version(project, "pydantic-settings")}"'
    edit(template / TEMPLATE_PROJECT / "pyproject.toml", '"pydantic-settings>=2.7"', pin)
    doc = "\n## Upgrading\n\nFrom the template's commit B.\n"
    append(template / TEMPLATE_PROJECT / "docs" / "deployment.md", doc)
    fix = '\n\n# From the template\'s commit B.\nTEMPLATE_REVISION = "B"\n'
    append(template / TEMPLATE_PACKAGE / "infrastructure" / "settings.py", fix)
    commit_b = commit(shell, template, "B")

    # 3. The project is behind; update it without questions.
    behind = shell(CRUFT, "check", cwd=project, expect=1)
    assert "out of date" in behind.stdout
    update = shell(CRUFT, "update", "--skip-apply-ask", cwd=project)

    # 4. B arrives whole, the user's job stays, nothing conflicts, and the checks pass.
    assert "with conflicts" not in update.stdout + update.stderr
    assert unmerged_files(shell, project) == []
    assert conflict_leftovers(project) == []
    changed = shell("git", "status", "--porcelain", cwd=project).stdout.splitlines()
    assert sorted(line[3:] for line in changed) == [
        ".cruft.json",
        "docs/deployment.md",
        "pyproject.toml",
        f"src/{package}/infrastructure/settings.py",
    ]
    assert pin in (project / "pyproject.toml").read_text()
    assert (project / "docs" / "deployment.md").read_text().endswith(doc)
    assert (project / "src" / package / "infrastructure" / "settings.py").read_text().endswith(fix)
    assert jobs.read_text().endswith(DOCS_NEW_JOBS)
    assert cruft_state(project)["commit"] == commit_b
    shell(CRUFT, "check", cwd=project)

    # The raised pin leaves uv.lock behind: CI's `uv sync --locked` fails until `uv lock`.
    stale = shell("uv", "sync", "--locked", cwd=project, expect=None)
    assert stale.returncode != 0
    shell("uv", "lock", cwd=project)
    shell("uv", "sync", "--locked", "--quiet", cwd=project)
    shell("uv", "run", "just", "check", cwd=project)
    shell("uv", "run", "just", "test", cwd=project)


def test_a_conflicting_change_is_reported_and_left_marked(
    shell: Shell, template: Path, tmp_path: Path
) -> None:
    # README.md is one of the files both sides edit (README "Your code"): the user retitles it.
    project = bake_with_cruft(shell, template, tmp_path / "projects", DEFAULT.context)
    readme = project / "README.md"
    title = readme.read_text().splitlines()[0]
    edit(readme, title, "# Billing")
    commit(shell, project, "Retitle")
    # The template changes the same line, and a doc the user left alone.
    edit(template / TEMPLATE_PROJECT / "README.md", TEMPLATE_TITLE, TEMPLATE_TITLE + ", a service")
    append(template / TEMPLATE_PROJECT / "docs" / "deployment.md", "\nFrom commit B.\n")
    commit(shell, template, "B")
    linked = cruft_state(project)

    update = shell(CRUFT, "update", "--skip-apply-ask", cwd=project)

    # cruft exits 0 and says "Good work!"; git's lines before that name the conflict.
    output = update.stdout + update.stderr
    assert "Applied patch to 'README.md' with conflicts." in output
    assert "Applied patch to 'docs/deployment.md' cleanly." in output
    assert unmerged_files(shell, project) == ["README.md"]
    assert conflict_leftovers(project) == ["README.md"]
    merged = readme.read_text()
    ours = merged.index("# Billing")
    theirs = merged.index(f"{title}, a service")
    assert merged.index("<<<<<<< ours") < ours < merged.index("=======") < theirs
    assert (project / "docs" / "deployment.md").read_text().endswith("From commit B.\n")

    # `git reset --hard` backs out of the update, .cruft.json included.
    shell("git", "reset", "--hard", "--quiet", cwd=project)
    assert shell("git", "status", "--porcelain", cwd=project).stdout == ""
    assert cruft_state(project) == linked


def test_new_options_reach_an_old_project_with_defaults_from_its_answers(
    shell: Shell, template: Path, tmp_path: Path
) -> None:
    answers = {**DEFAULT.context, "project_name": "Billing Service", "author_name": "Zoë O'Brien"}
    project = bake_with_cruft(shell, template, tmp_path / "projects", answers)
    # B adds an option with a fixed default and one whose default comes from another answer,
    # as a renamed option's would (README: "Keep projects up to date").
    options_file = template / "cookiecutter.json"
    options = json.loads(options_file.read_text())
    prompts = options.pop("__prompts__")
    options |= {"license": "MIT", "maintainer": "{{ cookiecutter.author_name }}"}
    options_file.write_text(json.dumps({**options, "__prompts__": prompts}, indent=2) + "\n")
    edit(
        template / TEMPLATE_PROJECT / "pyproject.toml",
        'readme = "README.md"\n',
        'readme = "README.md"\nlicense = "{{ cookiecutter.license }}"\n'
        'maintainers = [{ name = "{{ cookiecutter.maintainer }}" }]\n',
    )
    commit(shell, template, "B")

    shell(CRUFT, "update", "--skip-apply-ask", cwd=project)

    assert unmerged_files(shell, project) == []
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert pyproject["license"] == "MIT"
    assert pyproject["maintainers"] == [{"name": "Zoë O'Brien"}]
    new_answers = {"license": "MIT", "maintainer": "Zoë O'Brien"}
    assert answers_of(project).items() >= new_answers.items()
    context = cruft_state(project)["context"]
    assert isinstance(context, dict) and context["cookiecutter"].items() >= new_answers.items()

    # Another value for a new option is one more update away.
    commit(shell, project, "Update from the template")
    shell(
        CRUFT,
        "update",
        "--skip-apply-ask",
        "--variables-to-update",
        '{"license": "Apache-2.0"}',
        cwd=project,
    )
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert pyproject["license"] == "Apache-2.0"
    assert answers_of(project)["license"] == "Apache-2.0"


def test_a_dropped_choice_stops_the_update_until_the_project_picks_another(
    shell: Shell, template: Path, tmp_path: Path
) -> None:
    project = bake_with_cruft(
        shell, template, tmp_path / "projects", {**DEFAULT.context, "python_version": "3.11"}
    )
    options_file = template / "cookiecutter.json"
    edit(options_file, '["3.12", "3.13", "3.11"]', '["3.12", "3.13"]')
    commit(shell, template, "B: Python 3.11 is no longer offered")

    refused = shell(CRUFT, "update", "--skip-apply-ask", cwd=project, expect=1)

    message = " ".join(refused.stderr.split())  # cruft's traceback wraps it to the terminal
    assert "ValueError: 3.11 provided for choice variable python_version" in message
    assert shell("git", "status", "--porcelain", cwd=project).stdout == ""
    shell(
        CRUFT,
        "update",
        "--skip-apply-ask",
        "--variables-to-update",
        '{"python_version": "3.12"}',
        cwd=project,
    )
    assert (project / ".python-version").read_text().strip() == "3.12"
    assert answers_of(project)["python_version"] == "3.12"


def test_a_cookiecutter_bake_links_to_its_template_from_its_answers(
    shell: Shell, template: Path, tmp_path: Path
) -> None:
    # A project baked without cruft, with answers that are not the defaults.
    output = tmp_path / "projects"
    answers = ["cache_backend=none", "project_name=Zoë's Billing", "package_name=billing"]
    shell(COOKIECUTTER, "--no-input", template, "-o", output, *answers, cwd=tmp_path)
    [project] = output.iterdir()
    commit(shell, project, "Generate from the template")

    shell(
        CRUFT,
        "link",
        "--no-input",
        "--checkout",
        head(shell, template),
        "--extra-context",
        (project / ".cookiecutter.json").read_text(),
        template,
        cwd=project,
    )

    # The link reproduces the bake exactly, and from then on updates arrive.
    shell(CRUFT, "diff", "--exit-code", cwd=project)
    commit(shell, project, "Link to the template")
    append(template / TEMPLATE_PROJECT / "README.md", "\nFrom the template's commit B.\n")
    commit(shell, template, "B")
    shell(CRUFT, "update", "--skip-apply-ask", cwd=project)
    assert (project / "README.md").read_text().endswith("From the template's commit B.\n")


def tree(root: Path) -> dict[str, tuple[int, bytes]]:
    """Every path under `root`, with its mode and, for a file, its bytes."""
    return {
        str(path.relative_to(root)): (
            path.lstat().st_mode,
            path.read_bytes() if path.is_file() else b"",
        )
        for path in sorted(root.rglob("*"))
    }


def test_the_same_answers_bake_the_same_bytes_without_git_or_uv(
    cookies, combination: Combination, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = cookies.bake(extra_context=combination.context)
    # The hooks run with this Python by its full path; an empty PATH leaves them no git or uv.
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    second = cookies.bake(extra_context=combination.context)

    assert first.exit_code == 0, first.exception
    assert second.exit_code == 0, second.exception
    assert tree(second.project_path) == tree(first.project_path)


def test_the_template_check_workflow_is_off_by_default_and_runs_cruft_check(
    project: Path,
) -> None:
    path = project / ".github/workflows/template-check.yml"
    schema = ["--builtin-schema", "vendor.github-workflows", str(path)]
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *schema], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [job] = yaml.safe_load(path.read_text())["jobs"].values()
    assert job["if"] == "vars.TEMPLATE_CHECK == 'true'"
    assert [step["run"] for step in job["steps"] if "run" in step] == ["uvx cruft check"]

    readme = (project / "README.md").read_text()
    docs = (project / "docs" / "updates.md").read_text()
    for command in ("uvx cruft check", "uvx cruft update --skip-apply-ask"):
        assert command in readme and command in docs
    assert "docs/updates.md" in readme
    assert "gh variable set TEMPLATE_CHECK --body true" in docs
    assert path.name in docs


# The ownership line (the generated README.md, "Your code"): the user's files, paths relative to
# the project with the package folder as `PKG`; the shared ones both sides edit; files on
# neither side (markers and answers). Every other file is the template's.
PKG = "{{cookiecutter.package_name}}"
USER_FILES = {
    f"src/{PKG}/jobs.py",
    f"src/{PKG}/worker_lifespan.py",
    f"src/{PKG}/config.py",
    f"src/{PKG}/api/routes.py",
    f"src/{PKG}/api/examples.py",
    "tests/conftest.py",
    "tests/test_jobs.py",
}
SHARED_FILES = {"pyproject.toml", "uv.lock", "README.md"}
NEITHER = {
    ".cookiecutter.json",
    ".cruft.json",
    ".python-version",
    f"src/{PKG}/__init__.py",
    f"src/{PKG}/py.typed",
}
# How the template's commit B marks each kind of file: a comment in that file's syntax.
MARK = "From the template's commit B, which changes every template file."
COMMENTS = {
    ".py": "# {}",
    ".md": "<!-- {} -->",
    ".yml": "# {}",
    ".yaml": "# {}",
    ".css": "/* {} */",
    ".js": "/* {} */",
    ".html": "<!-- {} -->",
    "justfile": "# {}",
    "Dockerfile": "# {}",
    ".env.example": "# {}",
    ".dockerignore": "# {}",
    ".gitignore": "# {}",
}
UNCOMMENTABLE = {".json", ".png"}  # a template file B cannot mark with a comment


def template_side(relative: str) -> bool:
    """Whether `relative` (a project path, the package folder written `PKG`) is the template's."""
    if relative in USER_FILES | SHARED_FILES | NEITHER:
        return False
    parts = relative.split("/")
    if parts[0] == "tests":
        return parts[1] == "infrastructure"  # tests/test_*.py, conftest.py: the user's
    return True  # the API's plumbing included: the user's route modules are files B lacks


def comment_for(path: Path) -> str | None:
    style = COMMENTS.get(path.name) or COMMENTS.get(path.suffix)
    return style.format(MARK) if style else None


def marked(text: str, comment: str, python: bool) -> str:
    """`text` with `comment` as a line of its own at the end (two blank lines before it in
    Python, as ruff format leaves a comment after a function)."""
    if not text.strip():
        return comment + "\n"
    return text.rstrip("\n") + ("\n\n\n" if python else "\n\n") + comment + "\n"


def template_files(project_root: Path, package: str) -> dict[str, Path]:
    """The template-side files under `project_root` (the template's project folder, or a
    baked project whose package is `package`) that git tracks, by their `PKG` path."""
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=project_root, capture_output=True, check=True, text=True
    )
    files = {}
    for name in sorted(filter(None, listing.stdout.split("\0"))):
        generic = name.replace(f"src/{package}/", f"src/{PKG}/", 1)
        if template_side(generic):
            files[generic] = project_root / name
    return files


# The user's additions, exactly as the generated docs say (README "Your code",
# docs/background-tasks.md "Add a job", "Shared resources", "Cron", docs/api.md "Add a route").
USER_SETTINGS = """

    order_currency: str = "EUR"
    receipt_concurrency: int = 2
"""
USER_LIFESPAN_IMPORTS = "import asyncio\nfrom collections.abc import AsyncIterator"
USER_LIFESPAN_CONFIG = "from .config import get_settings\nfrom .queue import JobContext"
USER_LIFESPAN_BODY = """    \"\"\"
    # At most `receipt_concurrency` receipts are sent at once, across this worker's jobs.
    ctx["receipt_slots"] = asyncio.Semaphore(get_settings().receipt_concurrency)
    yield
"""
USER_JOBS = '''

@job(max_tries=5)
async def send_receipt(ctx: JobContext, order_id: str) -> str:
    """Send the receipt for an order, one of at most `receipt_concurrency` at once."""
    async with ctx["receipt_slots"]:
        logger.info("sending the receipt for order %s", order_id)
        return f"receipt {order_id} ({get_settings().order_currency})"


@job
async def add_line(ctx: JobContext, order_id: str, amount: int) -> int:
    """Add a line to an order; returns the line's amount in cents."""
    logger.info("order %s: a line of %d", order_id, amount)
    return amount * 100


@cron_job(minute={0, 30})
async def send_digest(ctx: JobContext) -> None:
    """Send the digest of the last half hour's receipts."""
    logger.info("sending the digest")
'''
USER_ROUTE = '''"""`GET /orders/{order_id}`: an order, in the shop's currency."""

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from .dependencies import AppSettings, authorize
from .problems import problem_responses

router = APIRouter(prefix="/orders", tags=["orders"], dependencies=[Depends(authorize)])


class Order(BaseModel):
    order_id: str
    currency: str


@router.get("/{order_id}", responses=problem_responses(422))
async def read_order(order_id: str, settings: AppSettings) -> Order:
    return Order(order_id=order_id, currency=settings.order_currency)
'''
USER_TESTS = '''"""The user's tests: their jobs, cron entry, shared resource, setting and route."""

import asyncio

import httpx
import pytest

from PACKAGE.api.app import create_app
from PACKAGE.config import get_settings
from PACKAGE.infrastructure.local.redis_server import LocalRedisServer
from PACKAGE.infrastructure.tasks import WorkerSettings
from PACKAGE.jobs import add_line, send_digest, send_receipt
from PACKAGE.queue import JobContext, JobStatus, close_task_pool
from PACKAGE.worker_lifespan import worker_lifespan


@pytest.fixture(autouse=True)
def fresh_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDER_CURRENCY", "CHF")
    get_settings.cache_clear()


async def test_the_jobs_run_inline_with_the_worker_s_resources() -> None:
    ctx: JobContext = {"job_id": "test", "job_try": 1}
    async with worker_lifespan(ctx):
        assert isinstance(ctx["receipt_slots"], asyncio.Semaphore)
        assert await send_receipt(ctx, "A-17") == "receipt A-17 (CHF)"
        assert await add_line(ctx, "A-17", 3) == 300
        await send_digest(ctx)  # logs; returns nothing


def test_the_worker_runs_the_declared_jobs() -> None:
    names = {function.name for function in WorkerSettings.functions}
    assert {"send_receipt", "add_line"} <= names
    assert "cron:send_digest" in {cron.name for cron in WorkerSettings.cron_jobs}
    assert send_receipt.spec.max_tries == 5


async def test_a_receipt_is_queued_through_its_typed_handle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with LocalRedisServer() as server:
        monkeypatch.setenv("REDIS_URL", server.url)
        get_settings.cache_clear()
        try:
            later = await send_receipt.options(defer_by=60).enqueue("A-17")
            assert await later.status() == JobStatus.deferred
            now = await add_line.enqueue("A-17", amount=3)
            assert await now.status() == JobStatus.queued
        finally:
            await close_task_pool()


async def test_the_orders_route_answers_in_the_configured_currency() -> None:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/orders/A-17")
    assert response.status_code == 200
    assert response.json() == {"order_id": "A-17", "currency": "CHF"}
'''


@pytest.mark.slow
def test_an_update_that_changes_every_template_file_merges_without_a_conflict(
    shell: Shell, template: Path, tmp_path: Path
) -> None:
    # 1. Bake at A, lock and commit, then make the user's additions as the docs say.
    project = bake_with_cruft(shell, template, tmp_path / "projects", DEFAULT.context)
    package = answers_of(project)["package_name"]
    shell("uv", "sync", "--quiet", cwd=project)
    commit(shell, project, "Lock")
    source = project / "src" / package
    class_doc = 'yours below (`name: type = default`)."""\n'
    edit(source / "config.py", class_doc, class_doc + USER_SETTINGS)
    lifespan = source / "worker_lifespan.py"
    edit(lifespan, "from collections.abc import AsyncIterator", USER_LIFESPAN_IMPORTS)
    edit(lifespan, "from .queue import JobContext", USER_LIFESPAN_CONFIG)
    edit(lifespan, '    """\n    yield\n', USER_LIFESPAN_BODY)
    jobs = source / "jobs.py"
    edit(jobs, "from .queue import ", "from .config import get_settings\nfrom .queue import ")
    append(jobs, USER_JOBS)
    (source / "api" / "orders.py").write_text(USER_ROUTE)
    routes = source / "api" / "routes.py"
    edit(routes, "from . import examples\n", "from . import examples, orders\n")
    edit(routes, "ROUTERS = (examples.router,)", "ROUTERS = (examples.router, orders.router)")
    (project / "tests" / "test_orders.py").write_text(USER_TESTS.replace("PACKAGE", package))
    user_paths = [
        source / "config.py",
        lifespan,
        jobs,
        source / "api" / "orders.py",
        routes,
        project / "tests" / "test_orders.py",
    ]
    shell("uv", "run", "ruff", "format", *user_paths, cwd=project)  # as `just fmt` would
    shell(
        "uv", "run", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_orders.py", cwd=project
    )
    commit(shell, project, "Orders: receipts, lines, a digest, a route, a setting")
    users = {path: path.read_bytes() for path in user_paths}

    # 2. The template's commit B marks every template-side file of the template's project tree.
    template_project = template / TEMPLATE_PROJECT
    to_mark = template_files(template_project, PKG)
    unmarkable = sorted(name for name, path in to_mark.items() if comment_for(path) is None)
    assert {Path(name).suffix for name in unmarkable} <= UNCOMMENTABLE, unmarkable
    marked_names = sorted(set(to_mark) - set(unmarkable))
    assert len(marked_names) > 100, marked_names  # the whole plumbing, not a handful
    for must in (f"src/{PKG}/queue.py", f"src/{PKG}/infrastructure/tasks.py", "justfile"):
        assert must in marked_names
    for name in marked_names:
        path = to_mark[name]
        comment = comment_for(path)
        assert comment is not None
        path.write_text(marked(path.read_text(), comment, path.suffix == ".py"))
    # B changes the user's files too, as a template fixing its seeds would: the project's
    # `[tool.cruft] skip` keeps them out of the update.
    for name in sorted(USER_FILES):
        seed = template_project / name
        seed.write_text(marked(seed.read_text(), "# " + MARK, True))
    commit_b = commit(shell, template, "B: every template file")

    # 3. Update without questions.
    update = shell(CRUFT, "update", "--skip-apply-ask", "-y", cwd=project)

    # 4. No conflict; B reached every template file of the project, and nothing else.
    assert "with conflicts" not in update.stdout + update.stderr
    assert unmerged_files(shell, project) == []
    assert conflict_leftovers(project) == []
    in_project = template_files(project, package)
    # The project has the template's files its answers keep, and the user's new route module.
    assert sorted(set(in_project) - set(to_mark)) == [f"src/{PKG}/api/orders.py"]
    reached = {name: path for name, path in in_project.items() if name in to_mark}
    assert len(reached) > 100
    missed = [
        name
        for name, path in reached.items()
        if comment_for(path) is not None and MARK not in path.read_text()
    ]
    assert missed == []
    for name in sorted(USER_FILES):
        kept = project / name.replace(PKG, package)
        assert MARK not in kept.read_text(), f"the update changed the user's {name}"
    changed = shell("git", "status", "--porcelain", cwd=project).stdout.splitlines()
    assert all(line[:2] in {"M ", " M", "MM"} for line in changed), changed
    expected = {str(path.relative_to(project)) for path in reached.values()}
    expected -= {str(reached[name].relative_to(project)) for name in reached if name in unmarkable}
    assert sorted(line[3:] for line in changed) == sorted(expected | {".cruft.json"})
    for path, content in users.items():
        assert path.read_bytes() == content, f"the update changed {path.relative_to(project)}"
    assert cruft_state(project)["commit"] == commit_b

    # 5. The updated project passes its checks, the user's tests, and the template's tests that
    # read what the user added (settings, the registry, WorkerSettings); the project's whole
    # suite (25 minutes) runs in test_generated_checks.py on the fresh bakes.
    shell("uv", "sync", "--locked", "--quiet", cwd=project)
    shell("uv", "run", "just", "check", cwd=project)
    shell(
        "uv",
        "run",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        *sorted(str(path.relative_to(project)) for path in project.glob("tests/test_*.py")),
        "tests/infrastructure/test_queue.py",
        "tests/infrastructure/test_config.py",
        "tests/infrastructure/test_tasks.py",
        "tests/infrastructure/test_handles.py",
        cwd=project,
    )
