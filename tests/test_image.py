"""The generated image, built and run for real: podman, on stand-in base images (issue 16).

For one curated combination per Dockerfile variant (the queue's worker or not, the API or not;
together they cover every Python version), the test bakes, runs `uv lock`, builds the unmodified
Dockerfile with `podman build --pull=never` on the stand-in images of tests/images/base_images.py,
and runs the image against a Redis of its own (the project's LocalRedisServer on a free loopback
port). It checks the user, the read-only root, the absence of dev tools, a job queued from the
host, `worker-check --this-host` before and after the worker stops, a stop with a job running,
and the API's readiness from the same image. Then compose.yaml itself runs under podman-compose
(test_compose_runs_the_services_and_their_healthchecks_pass).

Containers use the host's network and 127.0.0.1 only, and every container, image and volume made
here is removed by name, whatever the outcome. Build times, image sizes and what each check saw
are printed at the end of the session and written to .pytest_cache/d/image-test/report.txt.

The build reaches the package index through the host's CA bundle (mounted over the image's) and
tests/images/uv.toml (native-tls), mounted for the build only: neither is in the image.
"""

import json
import re
import secrets
import shutil
import socket
import subprocess
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import COMBINATIONS, Combination, tool_environment
from .images.base_images import HERE as IMAGES_DIR
from .images.base_images import (
    REDIS_IMAGE,
    ensure_base_images,
    image_exists,
    make_image,
    podman,
    podman_environment,
)
from .test_compose import seconds

pytestmark = pytest.mark.slow

HOST_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
PROJECT_CLIENT = IMAGES_DIR / "project_client.py"
TEST_IMAGE_REPOSITORY = "localhost/cookiecutter-arq-test"
CONTAINER_PREFIX = "cookiecutter-arq-test"
# The stop check: the job outlives SIGTERM by JOB_SECONDS, well within the grace given.
SHUTDOWN_GRACE = 15
JOB_SECONDS = 3
# What a project's dev group installs that the image must not have, besides its dev dependencies.
DEV_COMMANDS = ["uv", "uvx", "pytest", "ruff", "mypy", "just"]


def api_of(combination: Combination) -> bool:
    return combination.context.get("api_framework", "fastapi") == "fastapi"


def queue_of(combination: Combination) -> bool:
    return combination.cache_backend != "none"


def first_of_each_variant() -> list[Combination]:
    """The first curated combination of each Dockerfile variant: its command differs by whether
    there is a queue and an API (the Python version only changes the base image's tag)."""
    chosen: dict[tuple[bool, bool], Combination] = {}
    for combination in COMBINATIONS:
        chosen.setdefault((queue_of(combination), api_of(combination)), combination)
    return list(chosen.values())


IMAGE_COMBINATIONS = first_of_each_variant()
[COMPOSE_COMBINATION] = [c for c in COMBINATIONS if c.cache_backend == "redis" and not c.extra]


@dataclass
class Built:
    combination: Combination
    project: Path
    package: str
    name: str
    seconds: float
    size: int

    @property
    def pyproject(self) -> dict[str, Any]:
        return tomllib.loads((self.project / "pyproject.toml").read_text())

    @property
    def dev_dependencies(self) -> list[str]:
        """The names in the project's dev group."""
        dev = self.pyproject["dependency-groups"]["dev"]
        return [re.match(r"[A-Za-z0-9_.-]+", requirement).group(0) for requirement in dev]

    def locked_runtime(self) -> dict[str, str | None]:
        """What uv.lock installs without the dev group: name -> version, None for a package only
        some platforms get (its line has a marker)."""
        exported = run(
            ["uv", "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project"],
            self.project,
            env=tool_environment(),
        )
        locked: dict[str, str | None] = {}
        for line in exported.splitlines():
            if match := re.match(r"([A-Za-z0-9_.-]+)==(\S+)( ;)?", line):
                name, version, marker = match.groups()
                locked[normalized(name)] = None if marker else version
        return locked


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class Report:
    """What the checks saw, printed at the end of the session."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, built: Built | None, line: str) -> None:
        where = f"[{built.combination.id}] " if built else ""
        self.lines.append(f"{where}{line}")


@pytest.fixture(scope="session")
def report(request: pytest.FixtureRequest) -> Iterator[Report]:
    collected = Report()
    yield collected
    if not collected.lines:
        return
    text = "\n".join(["image test report (tests/test_image.py)", *collected.lines]) + "\n"
    path = None
    if request.config.cache is not None:  # None under -p no:cacheprovider
        path = request.config.cache.mkdir("image-test") / "report.txt"
        path.write_text(text)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # shown whether the tests pass or fail
            reporter.write_sep("-", "image test report")
            reporter.write(text)
            if path is not None:
                reporter.write_line(f"(written to {path})")


def run(command: list[str], cwd: Path | None = None, **kwargs: Any) -> str:
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, (
        f"{' '.join(command)} exited {result.returncode}:\n"
        + (result.stdout + result.stderr)[-3000:]
    )
    return result.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def remove_containers(*names: str) -> None:
    for name in names:
        podman("rm", "--force", "--ignore", "--time", "0", name, check=False)


@pytest.fixture(scope="session")
def podman_ready() -> None:
    assert shutil.which("podman"), "podman is missing: .ci/run installs it (apt-get install podman)"


@pytest.fixture(scope="session")
def image_of(bake_once, podman_ready, report: Report) -> Iterator[Callable[[Combination], Built]]:
    """Build a combination's image the first time it is asked for (with `--pull=never`), then
    hand back the same one; every image built is removed at the end of the session."""
    images: dict[str, Built] = {}
    names: list[str] = []

    def build(combination: Combination) -> Built:
        if combination.id in images:
            return images[combination.id]
        project = bake_once(combination)
        package = json.loads((project / ".cookiecutter.json").read_text())["package_name"]
        run(["uv", "lock", "--quiet"], project, env=tool_environment())
        ensure_base_images(project / "Dockerfile", tool_environment())
        name = f"{TEST_IMAGE_REPOSITORY}/{project.name}:{combination.id}".lower()
        names.append(name)
        started = time.monotonic()
        podman(
            "build",
            "--pull=never",
            "--network=host",
            "--layers=false",  # no intermediate images left behind, only the one named here
            f"--volume={HOST_CA_BUNDLE}:/etc/ssl/certs/ca-certificates.crt:ro",
            f"--volume={IMAGES_DIR / 'uv.toml'}:/etc/uv/uv.toml:ro",
            f"--tag={name}",
            str(project),
        )
        seconds = time.monotonic() - started
        size = int(podman("image", "inspect", "--format", "{{.Size}}", name).stdout)
        images[combination.id] = Built(combination, project, package, name, seconds, size)
        report.add(
            images[combination.id], f"built {name} in {seconds:.1f} s; size {size / 1e6:.0f} MB"
        )
        return images[combination.id]

    try:
        yield build
    finally:
        for name in names:
            podman("rmi", "--force", "--ignore", name, check=False)


def project_client(built: Built, *args: str, env: dict[str, str] | None = None) -> str:
    """tests/images/project_client.py in the baked project's own environment."""
    environment = {**tool_environment(), **(env or {})}
    command = ["uv", "run", "--quiet", "python", str(PROJECT_CLIENT), built.package, *args]
    return run(command, built.project, env=environment).strip()


@pytest.fixture(scope="session")
def redis_for() -> Iterator[Callable[[Built], str]]:
    """The project's throwaway Redis on a free 127.0.0.1 port (one per baked project, started
    when first asked for); all are stopped at the end of the session."""
    servers: dict[Path, tuple[subprocess.Popen[str], str]] = {}

    def serve(built: Built) -> str:
        if built.project not in servers:
            command = [
                "uv",
                "run",
                "--quiet",
                "python",
                str(PROJECT_CLIENT),
                built.package,
                "redis",
            ]
            server = subprocess.Popen(
                command,
                cwd=built.project,
                env=tool_environment(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert server.stdout is not None
            url = server.stdout.readline().strip()
            servers[built.project] = (server, url)
            assert url.startswith("redis://127.0.0.1:"), f"the project's Redis: {url!r}"
        return servers[built.project][1]

    try:
        yield serve
    finally:
        for server, _ in servers.values():
            assert server.stdin is not None
            server.stdin.close()  # project_client.py stops the server when its input closes
            server.wait(timeout=30)


@pytest.fixture
def containers(request) -> Iterator[list[str]]:
    """Names of the containers a test starts; each is removed when the test ends."""
    names: list[str] = []
    yield names
    remove_containers(*names)


def container_name(built: Built, role: str) -> str:
    return f"{CONTAINER_PREFIX}-{built.combination.id}-{role}".lower()


def host_name(container: str) -> str:
    """A container's host name: its name's last 63 characters, the most a host name may have
    (`worker-check --this-host` tells workers apart by it)."""
    return container[-63:].lstrip("-_.")


def start(
    built: Built,
    containers: list[str],
    role: str,
    *command: str,
    env: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
) -> str:
    """Run the image detached, on the host's network, read-only, as the image's own user."""
    name = container_name(built, role)
    remove_containers(name)  # left over from a run that was killed
    containers.append(name)
    environment = [f"--env={key}={value}" for key, value in (env or {}).items()]
    podman(
        "run",
        "--detach",
        f"--name={name}",
        f"--hostname={host_name(name)}",
        "--network=host",
        "--read-only",
        *environment,
        *extra,
        built.name,
        *command,
    )
    return name


def wait_until(check, seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        answer = check()
        if answer:
            return answer
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.2)


def worker_check(built: Built, container: str) -> subprocess.CompletedProcess[str]:
    cli = f"{built.package}.infrastructure.ops.cli"
    return podman(
        "exec", container, "python", "-m", cli, "worker-check", "--this-host", check=False
    )


def inspect(container: str, template: str) -> str:
    return podman("inspect", "--format", template, container).stdout.strip()


# What the image's own user finds inside: who it is, what it may write, and what is installed.
INSIDE = """
import importlib.metadata, json, os, shutil, sys
writable = []
# The user's home is its own: only the read-only root keeps it from writing there.
for folder in ("/", "/app", "/app/.venv", "/usr/local", "/etc", os.path.expanduser("~")):
    try:
        open(os.path.join(folder, ".probe"), "w").close()
        writable.append(folder)
    except OSError:
        pass
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "euid": os.geteuid(),
    "writable": writable,
    "root_mount": [line.split()[3] for line in open("/proc/mounts") if line.split()[1] == "/"],
    "commands": {name: shutil.which(name) for name in sys.argv[1].split(",")},
    "installed": {d.metadata["Name"]: d.version for d in importlib.metadata.distributions()},
}))
"""


@pytest.mark.parametrize("combination", IMAGE_COMBINATIONS, ids=lambda c: c.id)
def test_image_runs_as_a_numeric_non_root_user_read_only_without_dev_tools(
    image_of, combination: Combination, report: Report
) -> None:
    built = image_of(combination)
    user = podman("image", "inspect", "--format", "{{.Config.User}}", built.name).stdout.strip()
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), f"USER must be numeric uid:gid, got {user!r}"

    found = json.loads(
        podman(
            "run",
            "--rm",
            "--network=host",
            "--read-only",
            built.name,
            "python",
            "-c",
            INSIDE,
            ",".join(DEV_COMMANDS),
        ).stdout
    )

    assert f"{found['uid']}:{found['gid']}" == user and found["euid"] != 0
    assert found["writable"] == [], "a read-only root leaves nothing writable"
    assert found["root_mount"] and found["root_mount"][0].startswith("ro")
    assert not any(found["commands"].values()), found["commands"]
    # The venv holds exactly what uv.lock installs without the dev group, and the project.
    installed = {normalized(name): version for name, version in found["installed"].items()}
    assert installed.pop(normalized(built.pyproject["project"]["name"]), None), (
        "the project is installed"
    )
    locked = built.locked_runtime()
    assert set(installed) <= set(locked), (
        f"not in the lock's runtime set: {set(installed) - set(locked)}"
    )
    assert {name: installed.get(name) for name, version in locked.items() if version} == {
        name: version for name, version in locked.items() if version
    }
    dev_only = sorted({normalized(name) for name in built.dev_dependencies} - set(locked))
    assert dev_only and not set(dev_only) & set(installed)
    report.add(
        built,
        f"user {user} (uid {found['uid']}, euid {found['euid']}); root mounted "
        f"{found['root_mount'][0].split(',')[0]}; writable folders: none; absent commands: "
        f"{', '.join(DEV_COMMANDS)}; {len(installed)} packages, exactly uv.lock's without the dev "
        f"group; absent dev-only packages: {', '.join(dev_only)}",
    )


QUEUE_IMAGES = [c for c in IMAGE_COMBINATIONS if queue_of(c)]
API_IMAGES = [c for c in IMAGE_COMBINATIONS if api_of(c)]
PLAIN_IMAGES = [c for c in IMAGE_COMBINATIONS if not queue_of(c) and not api_of(c)]


@pytest.mark.parametrize("combination", QUEUE_IMAGES, ids=lambda c: c.id)
def test_worker_in_the_image_runs_a_job_from_the_host_and_checks_itself(
    image_of, redis_for, combination: Combination, containers: list[str], report: Report
) -> None:
    built = image_of(combination)
    redis_url = redis_for(built) if queue_of(combination) else ""
    queue_prefix = f"image-test-{secrets.token_hex(4)}"
    env = {"REDIS_URL": redis_url, "QUEUE_PREFIX": queue_prefix}
    worker = start(built, containers, "worker", env=env)  # the image's own command

    alive = wait_until(
        lambda: worker_check(built, worker).returncode == 0 or None, 30, "worker-check answers 0"
    )
    assert alive
    process = podman("exec", worker, "cat", "/proc/1/status").stdout
    uid = re.search(r"^Uid:\s+(\d+)", process, re.M)
    assert uid and uid.group(1) != "0"
    started = time.monotonic()
    job_id = project_client(
        built, "enqueue", "example_task", '{"message": "from the host"}', env=env
    )
    result = json.loads(project_client(built, "result", job_id, "20", env=env))
    job_seconds = time.monotonic() - started
    assert result == "Processed: from the host"
    checked = worker_check(built, worker)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    stop_started = time.monotonic()
    podman("stop", "--time", "30", worker)
    stop_seconds = time.monotonic() - stop_started
    exit_code = inspect(worker, "{{.State.ExitCode}}")
    assert exit_code == "0", podman("logs", worker).stderr[-2000:]
    # The stopped worker's heartbeat is gone: the same check, from a new container under the
    # same host name, answers non-zero.
    after = podman(
        "run",
        "--rm",
        "--network=host",
        "--read-only",
        f"--hostname={host_name(worker)}",
        *[f"--env={key}={value}" for key, value in env.items()],
        built.name,
        "python",
        "-m",
        f"{built.package}.infrastructure.ops.cli",
        "worker-check",
        "--this-host",
        check=False,
    )
    assert after.returncode != 0, after.stdout
    report.add(
        built,
        f"worker: process uid {uid.group(1)}; example_task from the host -> {result!r} "
        f"({job_seconds:.1f} s with two `uv run`s); worker-check --this-host: "
        f"{checked.returncode} ({checked.stdout.splitlines()[0]}); podman stop: exit {exit_code} "
        f"in {stop_seconds:.1f} s; worker-check after: {after.returncode} "
        f"({after.stderr.strip().splitlines()[-1]})",
    )


@pytest.mark.parametrize("combination", QUEUE_IMAGES, ids=lambda c: c.id)
def test_sigterm_lets_the_running_job_finish_within_the_grace(
    image_of, redis_for, combination: Combination, containers: list[str], report: Report
) -> None:
    built = image_of(combination)
    redis_url = redis_for(built) if queue_of(combination) else ""
    queue_prefix = f"image-test-{secrets.token_hex(4)}"
    env = {"REDIS_URL": redis_url, "QUEUE_PREFIX": queue_prefix}
    worker = start(
        built,
        containers,
        "stop",
        "python",
        "-m",
        f"{built.package}.infrastructure.worker",
        "image_jobs.WorkerSettings",
        env={
            **env,
            "WORKER_SHUTDOWN_GRACE": str(SHUTDOWN_GRACE),
            "IMAGE_TEST_PACKAGE": built.package,
            "PYTHONPATH": "/image-test",
        },
        extra=(f"--volume={IMAGES_DIR}:/image-test:ro",),
    )
    wait_until(lambda: worker_check(built, worker).returncode == 0, 30, "the worker is alive")
    job_id = project_client(
        built,
        "enqueue",
        "sleep_then_answer",
        json.dumps({"seconds": JOB_SECONDS}),
        "--pool",
        env=env,
    )
    project_client(built, "wait-running", job_id, "10", env=env)

    stop_started = time.monotonic()
    podman("stop", "--time", str(SHUTDOWN_GRACE + 15), worker)
    stop_seconds = time.monotonic() - stop_started
    exit_code = inspect(worker, "{{.State.ExitCode}}")
    result = json.loads(project_client(built, "result", job_id, "1", env=env))

    assert exit_code == "0", podman("logs", worker).stderr[-2000:]
    assert result == f"slept {JOB_SECONDS} s"
    assert stop_seconds < SHUTDOWN_GRACE
    report.add(
        built,
        f"SIGTERM with a {JOB_SECONDS} s job running: the job finished ({result!r}), the "
        f"container exited {exit_code} after {stop_seconds:.1f} s "
        f"(WORKER_SHUTDOWN_GRACE={SHUTDOWN_GRACE})",
    )


def api_command(built: Built, port: int) -> list[str]:
    """How this image serves the API (the image's command, or compose.yaml's for a queue
    project), on 127.0.0.1 and `port` instead of 0.0.0.0:8000."""
    if queue_of(built.combination):
        compose = yaml.safe_load((built.project / "compose.yaml").read_text())
        command = list(compose["services"]["api"]["command"])
    else:
        image_command = podman("image", "inspect", "--format", "{{json .Config.Cmd}}", built.name)
        command = json.loads(image_command.stdout)
    assert command[0] == "uvicorn", command
    address = {"--host": "127.0.0.1", "--port": str(port)}
    return [
        address.get(before, word) for before, word in zip(["", *command[:-1]], command, strict=True)
    ]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def answered(answer: tuple[int, str]) -> tuple[int, str] | None:
    return answer if answer[0] else None


@pytest.mark.parametrize("combination", API_IMAGES, ids=lambda c: c.id)
def test_the_same_image_serves_the_api_and_is_ready(
    image_of, redis_for, combination: Combination, containers: list[str], report: Report
) -> None:
    built = image_of(combination)
    redis_url = redis_for(built) if queue_of(combination) else ""
    port = free_port()
    env = {"REDIS_URL": redis_url} if redis_url else {}
    start(built, containers, "api", *api_command(built, port), env=env)
    url = f"http://127.0.0.1:{port}/health/ready"

    status, body = wait_until(lambda: answered(get(url)), 30, f"{url} answers")

    assert status == 200, body
    report.add(built, f"API: GET /health/ready -> {status} {body}")


@pytest.mark.parametrize("combination", PLAIN_IMAGES, ids=lambda c: c.id)
def test_the_plain_image_runs_its_command(
    image_of, combination: Combination, report: Report
) -> None:
    built = image_of(combination)
    output = podman("run", "--rm", "--network=host", "--read-only", built.name).stdout.strip()

    assert "is configured for" in output
    report.add(built, f"the image's command printed: {output}")


def replaced(words: list[str], old: str, new: str) -> list[str]:
    """`words` with `old` replaced, which must be in one of them: a compose.yaml that changed
    shape fails here instead of running unchanged."""
    assert sum(old in word for word in words) == 1, f"{old!r} is not in one of {words!r}"
    return [word.replace(old, new) for word in words]


class Override(list):
    """A list that replaces the one compose.yaml has (`!override`), instead of adding to it."""


class Reset(list):
    """A list that compose.yaml's is dropped for (`!reset []`)."""


class OverrideDumper(yaml.SafeDumper):
    pass


OverrideDumper.add_representer(
    Override, lambda dumper, data: dumper.represent_sequence("!override", data)
)
OverrideDumper.add_representer(Reset, lambda dumper, data: dumper.represent_sequence("!reset", []))


def compose_override(built: Built, redis_port: int, api_port: int) -> dict[str, Any]:
    """compose.yaml's services on the host's network and 127.0.0.1 only (no bridge network): the
    cache on `redis_port`, the API on `api_port`, the worker and the API from the image built
    here (compose does not build it again). Only addresses change: every command keeps its
    options, every healthcheck its test, REDIS_URL its password."""
    services = yaml.safe_load((built.project / "compose.yaml").read_text())["services"]
    override: dict[str, Any] = {name: {"network_mode": "host"} for name in services}
    for name, service in services.items():
        if "ports" in service:
            override[name]["ports"] = Reset()  # the host's network publishes nothing
    cache = services["cache"]
    override["cache"]["command"] = replaced(
        cache["command"], "redis-server ", f"redis-server --bind 127.0.0.1 --port {redis_port} "
    )
    override["cache"]["healthcheck"] = {
        "test": Override(
            replaced(cache["healthcheck"]["test"], "redis-cli ", f"redis-cli -p {redis_port} ")
        )
    }
    for name in ("worker", "api"):
        [url] = replaced(
            [services[name]["environment"]["REDIS_URL"]],
            "@cache:6379/",
            f"@127.0.0.1:{redis_port}/",
        )
        override[name]["image"] = built.name
        override[name]["environment"] = {"REDIS_URL": url}
    # The worker's metrics (0.0.0.0:9100 in compose.yaml): on the host's network, loopback only.
    override["worker"]["environment"] |= {
        "WORKER_METRICS_HOST": "127.0.0.1",
        "WORKER_METRICS_PORT": str(free_port()),
    }
    override["api"]["command"] = api_command(built, api_port)
    override["api"]["healthcheck"] = {
        "test": Override(
            replaced(
                services["api"]["healthcheck"]["test"], "127.0.0.1:8000/", f"127.0.0.1:{api_port}/"
            )
        )
    }
    return {"services": override}


def healthy(container: str) -> bool:
    return podman("healthcheck", "run", container, check=False).returncode == 0


@pytest.mark.parametrize("combination", [COMPOSE_COMBINATION], ids=lambda c: c.id)
def test_compose_runs_the_services_and_their_healthchecks_pass(
    image_of, combination: Combination, tmp_path: Path, report: Report
) -> None:
    """podman-compose runs compose.yaml (with compose_override's addresses): each service's
    healthcheck answers healthy when run (podman 4.3 runs no healthcheck timers and ignores
    `condition: service_healthy`), the cache keeps its options and volume, a job from the host
    runs in the worker, the API is ready, and `stop` ends the worker cleanly."""
    built = image_of(combination)
    podman_compose = shutil.which("podman-compose")
    assert podman_compose, "podman-compose is a dev dependency of the template: run `uv sync`"
    if not image_exists(REDIS_IMAGE):
        make_image(REDIS_IMAGE)
    redis_port, api_port = free_port(), free_port()
    services = yaml.safe_load((built.project / "compose.yaml").read_text())["services"]
    override = tmp_path / "compose.test.yaml"
    override.write_text(
        yaml.dump(compose_override(built, redis_port, api_port), Dumper=OverrideDumper)
    )
    project_name = f"{CONTAINER_PREFIX}-compose"
    password = secrets.token_hex(16)
    compose = [
        podman_compose,
        "--in-pod=false",
        f"--project-name={project_name}",
        "--file=compose.yaml",
        f"--file={override}",
    ]
    environment = podman_environment({**tool_environment(), "REDIS_PASSWORD": password})
    names = {service: f"{project_name}_{service}_1" for service in ("cache", "worker", "api")}
    volume = f"{project_name}_cache-data"

    def clean_up() -> None:
        subprocess.run(
            [*compose, "down", "--volumes"], cwd=built.project, env=environment, capture_output=True
        )
        remove_containers(*names.values())
        podman("volume", "rm", "--force", volume, check=False)
        podman("network", "rm", "--force", f"{project_name}_default", check=False)

    clean_up()  # left over from a run that was killed
    try:
        run([*compose, "up", "--detach", "--no-build"], built.project, env=environment)
        proven: list[str] = []

        wait_until(lambda: healthy(names["cache"]), 30, "the cache's healthcheck passes")
        cache = ["podman", "exec", names["cache"], "redis-cli", "-p", str(redis_port)]
        settings = {
            key: run([*cache, "config", "get", key], env=environment).split()[1]
            for key in ("maxmemory-policy", "appendonly", "maxmemory")
        }
        assert settings["maxmemory-policy"] == "noeviction" and settings["appendonly"] == "yes"
        assert int(settings["maxmemory"]) == 512 * 1024 * 1024
        without_password = run(
            [
                "podman",
                "exec",
                "--env=REDISCLI_AUTH=",
                names["cache"],
                "sh",
                "-c",
                f"unset REDISCLI_AUTH; redis-cli -p {redis_port} ping",
            ],
            env=environment,
        )
        assert "NOAUTH" in without_password
        mounts = json.loads(inspect(names["cache"], "{{json .Mounts}}"))
        assert [(m["Name"], m["Destination"]) for m in mounts] == [(volume, "/data")]
        proven.append(
            f"cache: healthcheck healthy; {settings}; refuses a client without the password "
            f"({without_password.strip()}); volume {volume} at /data"
        )

        wait_until(lambda: healthy(names["worker"]), 30, "the worker's healthcheck passes")
        env = {"REDIS_URL": f"redis://:{password}@127.0.0.1:{redis_port}/0"}
        job_id = project_client(built, "enqueue", "example_task", '{"message": "compose"}', env=env)
        result = json.loads(project_client(built, "result", job_id, "20", env=env))
        assert result == "Processed: compose"
        aof = run(["podman", "exec", names["cache"], "ls", "/data/appendonlydir"], env=environment)
        assert ".aof" in aof
        worker_env = inspect(names["worker"], "{{json .Config.Env}}")
        assert "ENVIRONMENT=production" in worker_env
        restart = {
            service: inspect(name, "{{.HostConfig.RestartPolicy.Name}}")
            for service, name in names.items()
        }
        assert set(restart.values()) == {"unless-stopped"}, restart
        proven.append(
            f"worker: healthcheck (worker-check --this-host) healthy; a job from the host through "
            f"the password URL -> {result!r}; ENVIRONMENT=production; the AOF is written to the "
            f"volume; restart policies {restart}"
        )

        wait_until(lambda: healthy(names["api"]), 30, "the API's healthcheck passes")
        status, body = get(f"http://127.0.0.1:{api_port}/health/ready")
        assert status == 200, body
        proven.append(f"api: healthcheck healthy; GET /health/ready -> {status}")

        # stop_grace_period is given to `podman stop` (podman-compose logs the command it runs).
        grace = seconds(services["worker"]["stop_grace_period"])
        stop_started = time.monotonic()
        stopped = subprocess.run(
            [*compose, "--verbose", "stop", "worker"],
            cwd=built.project,
            env=environment,
            capture_output=True,
            text=True,
        )
        stop_seconds = time.monotonic() - stop_started
        assert stopped.returncode == 0, stopped.stderr
        assert f"podman stop -t {grace} {names['worker']}" in stopped.stderr, stopped.stderr
        exit_code = inspect(names["worker"], "{{.State.ExitCode}}")
        assert exit_code == "0"
        proven.append(
            f"podman-compose stop worker: `podman stop -t {grace}` (stop_grace_period), "
            f"exit {exit_code} in {stop_seconds:.1f} s"
        )
        for line in proven:
            report.add(built, f"compose: {line}")
    finally:
        clean_up()
    leftovers = podman("ps", "--all", "--filter", f"name={project_name}", "--format", "{{.Names}}")
    assert leftovers.stdout.strip() == ""
    assert podman("volume", "exists", volume, check=False).returncode != 0
