"""Post-generation hook: remove what the chosen options don't need, then print the next steps.

Runs inside the new project directory. It only moves and deletes files the template rendered:
no network, no git, no uv, no prompts, so a replay or a `cruft update` gives the same tree.
"""

import shutil
from pathlib import Path

ANSWERS = {
    "cache_backend": "{{ cookiecutter.cache_backend }}",
    "api_framework": "{{ cookiecutter.api_framework }}",
}
PACKAGE = "src/{{ cookiecutter.package_name }}"
PROJECT_SLUG = "{{ cookiecutter.project_slug }}"

# Which answers keep a path: for every option named, one of the values listed.
QUEUE = {"cache_backend": {"redis", "falkordb"}}
FALKORDB = {"cache_backend": {"falkordb"}}
NO_QUEUE = {"cache_backend": {"none"}}
API = {"api_framework": {"fastapi"}}
QUEUE_AND_API = {**QUEUE, **API}
QUEUE_WITHOUT_API = {**QUEUE, "api_framework": {"none"}}

# Every optional path, and the answers that keep it; other answers remove it.
KEEP_FOR = {
    f"{PACKAGE}/jobs.py": QUEUE,
    f"{PACKAGE}/queue.py": QUEUE,
    # infrastructure/ itself stays: settings.py (the template's settings) is in every bake.
    f"{PACKAGE}/infrastructure/client": QUEUE,
    f"{PACKAGE}/infrastructure/store": QUEUE,
    f"{PACKAGE}/infrastructure/worker": QUEUE,
    f"{PACKAGE}/infrastructure/ops": QUEUE,
    f"{PACKAGE}/infrastructure/local": QUEUE,
    f"{PACKAGE}/infrastructure/tasks.py": QUEUE,
    f"{PACKAGE}/infrastructure/job_types.py": QUEUE,
    f"{PACKAGE}/infrastructure/job_events.py": QUEUE,
    f"{PACKAGE}/infrastructure/registry.py": QUEUE,
    f"{PACKAGE}/infrastructure/keys.py": QUEUE,
    f"{PACKAGE}/infrastructure/limits.py": QUEUE,
    f"{PACKAGE}/worker_lifespan.py": QUEUE,
    f"{PACKAGE}/infrastructure/testing.py": QUEUE,
    "tests/test_jobs.py": QUEUE,
    "docs/testing.md": QUEUE,
    "docs/queues.md": QUEUE,
    f"{PACKAGE}/infrastructure/graph.py": FALKORDB,
    "tests/infrastructure/conftest.py": QUEUE,
    "tests/infrastructure/test_tasks.py": QUEUE,
    "tests/infrastructure/test_handles.py": QUEUE,
    "tests/infrastructure/test_job_typing.py": QUEUE,
    "tests/infrastructure/test_import_layers.py": QUEUE,
    "tests/infrastructure/test_worker.py": QUEUE,
    "tests/infrastructure/test_retries.py": QUEUE,
    "tests/infrastructure/test_serialization.py": QUEUE,
    "tests/infrastructure/test_client.py": QUEUE,
    "tests/infrastructure/test_queue.py": QUEUE,
    "tests/infrastructure/test_depth.py": QUEUE,
    "tests/infrastructure/test_cron.py": QUEUE,
    "tests/infrastructure/test_cli.py": QUEUE,
    "tests/infrastructure/test_connection.py": QUEUE,
    "tests/infrastructure/test_redis_errors.py": QUEUE,
    "tests/infrastructure/test_faults.py": QUEUE,
    "tests/infrastructure/test_bad_input.py": QUEUE,
    "tests/infrastructure/test_security.py": QUEUE,
    "tests/infrastructure/test_heartbeat.py": QUEUE,
    "tests/infrastructure/test_redis_server.py": QUEUE,
    "tests/infrastructure/test_dev.py": QUEUE,
    "tests/infrastructure/fault_jobs.py": QUEUE,
    "tests/infrastructure/outcome_jobs.py": QUEUE,
    "tests/infrastructure/test_outcomes.py": QUEUE_AND_API,
    "tests/infrastructure/test_requeue.py": QUEUE,
    "tests/infrastructure/test_malformed_records.py": QUEUE,
    "tests/infrastructure/test_graph.py": FALKORDB,
    "tests/infrastructure/test_metrics.py": QUEUE,
    f"{PACKAGE}/infrastructure/ops/activity.py": QUEUE,
    "tests/infrastructure/test_activity.py": QUEUE,
    "tests/infrastructure/test_queue_stats.py": QUEUE,
    "tests/infrastructure/test_isolation.py": QUEUE,
    "tests/infrastructure/test_cluster_slots.py": QUEUE,
    "tests/infrastructure/test_queues.py": QUEUE,
    "tests/infrastructure/test_pause.py": QUEUE,
    "tests/infrastructure/test_limits.py": QUEUE,
    "tests/infrastructure/limit_jobs.py": QUEUE,
    "tests/infrastructure/test_progress.py": QUEUE,
    "tests/infrastructure/progress_jobs.py": QUEUE,
    "tests/infrastructure/test_bulk.py": QUEUE,
    "tests/infrastructure/test_workflows.py": QUEUE,
    "tests/infrastructure/workflow_jobs.py": QUEUE,
    "tests/infrastructure/test_api_workflows.py": QUEUE_AND_API,
    "tests/infrastructure/test_celery_guide.py": QUEUE,
    "docs/workflows.md": QUEUE,
    "docs/coming-from-celery.md": QUEUE,
    "tests/infrastructure/test_job_stream.py": QUEUE_AND_API,
    "tests/infrastructure/test_migrate.py": QUEUE,
    "deploy/monitoring": QUEUE,
    "docs/monitoring.md": QUEUE,
    "tests/infrastructure/test_worker_logs.py": QUEUE,
    f"{PACKAGE}/api": API,
    "docs/api.md": API,
    f"{PACKAGE}/api/jobs.py": QUEUE_AND_API,
    f"{PACKAGE}/api/job_stream.py": QUEUE_AND_API,
    f"{PACKAGE}/api/workflows.py": QUEUE_AND_API,
    f"{PACKAGE}/api/examples.py": QUEUE_AND_API,
    f"{PACKAGE}/api/job_requests.py": QUEUE_AND_API,
    f"{PACKAGE}/api/metrics.py": QUEUE_AND_API,
    f"{PACKAGE}/api/dashboard": QUEUE_AND_API,
    "tests/infrastructure/test_dashboard.py": QUEUE_AND_API,
    "tests/infrastructure/test_dashboard_browser.py": QUEUE_AND_API,
    "docs/dashboard.md": QUEUE_AND_API,
    "docs/dashboard.png": QUEUE_AND_API,
    "docs/dashboard-workflow.png": QUEUE_AND_API,
    "tests/infrastructure/test_api_health.py": API,
    "tests/infrastructure/test_api_schema.py": API,
    "tests/infrastructure/test_api_jobs.py": QUEUE_AND_API,
    "tests/infrastructure/test_api_server.py": QUEUE_AND_API,
    "tests/infrastructure/test_tracing.py": QUEUE_AND_API,
    "tests/infrastructure/tracing_jobs.py": QUEUE_AND_API,
    "compose.yaml": QUEUE,
    "deploy/kubernetes": QUEUE,
    "deploy/kubernetes/base/api.yaml": QUEUE_AND_API,
    "deploy/kubernetes/components/keda/worker-metrics.yaml": QUEUE_WITHOUT_API,
    "deploy/kubernetes/components/worker-bulk/worker-metrics.yaml": QUEUE_WITHOUT_API,
    "docs/background-tasks.md": QUEUE,
    "docs/background-tasks-off.md": NO_QUEUE,
    "docs/deployment.md": QUEUE,
    "docs/deployment-plain.md": NO_QUEUE,
}

# Without a queue, the pages written for that case take the usual names.
RENAME_FOR = {
    "none": {
        "docs/background-tasks-off.md": "docs/background-tasks.md",
        "docs/deployment-plain.md": "docs/deployment.md",
    },
}


def kept(rule: dict[str, set[str]]) -> bool:
    return all(ANSWERS[option] in values for option, values in rule.items())


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def remove_empty_folders(root: Path) -> None:
    folders = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts))
    for folder in reversed(folders):
        if not any(folder.iterdir()):
            folder.rmdir()


def next_steps(answers: dict[str, str], project_slug: str) -> str:
    """The message printed after a bake: what to run first, and what `just dev` (or, without a
    queue, `just api`) starts for these answers, as the project's justfile runs it."""
    steps = ["uv sync", "uv run just check", "uv run just test"]
    server = "FalkorDB" if answers["cache_backend"] == "falkordb" else "Redis"
    api = "the API on http://127.0.0.1:8000"
    if answers["cache_backend"] == "none":
        if answers["api_framework"] == "fastapi":
            steps.append(f"uv run just api        # {api}; Ctrl-C stops it")
    elif answers["api_framework"] == "fastapi":
        steps.append(
            f"uv run just dev        # local {server}, a worker and {api}; Ctrl-C stops all three"
        )
    else:
        steps.append(f"uv run just dev        # local {server} and a worker; Ctrl-C stops both")
    lines = [f"Created {project_slug}. Next steps:", "", f"    cd {project_slug}"]
    lines += [f"    {step}" for step in steps]
    lines += ["", "See README.md and docs/background-tasks.md."]
    return "\n" + "\n".join(lines) + "\n"


def main() -> None:
    project = Path.cwd()
    for path, rule in KEEP_FOR.items():
        if not kept(rule):
            remove(project / path)
    for source, target in RENAME_FOR.get(ANSWERS["cache_backend"], {}).items():
        (project / source).replace(project / target)
    remove_empty_folders(project)
    print(next_steps(ANSWERS, PROJECT_SLUG))


if __name__ == "__main__":
    main()
