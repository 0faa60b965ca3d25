"""Post-generation hook: remove what the chosen options don't need, then print the next steps.

Runs inside the new project directory. It only moves and deletes files the template rendered:
no network, no git, no uv, no prompts, so a replay or a `cruft update` gives the same tree.
"""

import shutil
from pathlib import Path

CACHE_BACKEND = "{{ cookiecutter.cache_backend }}"
PACKAGE = "src/{{ cookiecutter.package_name }}"
PROJECT_SLUG = "{{ cookiecutter.project_slug }}"

QUEUE = {"redis", "falkordb"}

# Every optional path, and the cache_backend values that keep it; the other values remove it.
KEEP_FOR = {
    f"{PACKAGE}/jobs.py": QUEUE,
    f"{PACKAGE}/queue.py": QUEUE,
    f"{PACKAGE}/infrastructure": QUEUE,
    f"{PACKAGE}/infrastructure/graph.py": {"falkordb"},
    "tests/conftest.py": QUEUE,
    "tests/test_tasks.py": QUEUE,
    "tests/test_retries.py": QUEUE,
    "tests/test_serialization.py": QUEUE,
    "tests/test_client.py": QUEUE,
    "tests/test_queue.py": QUEUE,
    "tests/test_depth.py": QUEUE,
    "tests/test_cron.py": QUEUE,
    "tests/test_cli.py": QUEUE,
    "tests/test_connection.py": QUEUE,
    "tests/test_faults.py": QUEUE,
    "tests/test_bad_input.py": QUEUE,
    "tests/test_security.py": QUEUE,
    "tests/test_heartbeat.py": QUEUE,
    "tests/test_redis_server.py": QUEUE,
    "tests/fault_jobs.py": QUEUE,
    "tests/test_graph.py": {"falkordb"},
    "compose.yaml": QUEUE,
    "docs/background-tasks.md": QUEUE,
    "docs/background-tasks-off.md": {"none"},
    "docs/deployment.md": QUEUE,
    "docs/deployment-plain.md": {"none"},
}

# Without a queue, the pages written for that case take the usual names.
RENAME_FOR = {
    "none": {
        "docs/background-tasks-off.md": "docs/background-tasks.md",
        "docs/deployment-plain.md": "docs/deployment.md",
    },
}


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


def print_next_steps() -> None:
    steps = ["uv sync", "uv run just check", "uv run just test"]
    if CACHE_BACKEND in QUEUE:
        steps.append("uv run just dev        # local Redis + worker; Ctrl-C stops both")
    print(f"\nCreated {PROJECT_SLUG}. Next steps:\n")
    print(f"    cd {PROJECT_SLUG}")
    for step in steps:
        print(f"    {step}")
    print("\nSee README.md and docs/background-tasks.md.\n")


def main() -> None:
    project = Path.cwd()
    for path, backends in KEEP_FOR.items():
        if CACHE_BACKEND not in backends:
            remove(project / path)
    for source, target in RENAME_FOR.get(CACHE_BACKEND, {}).items():
        (project / source).replace(project / target)
    remove_empty_folders(project)
    print_next_steps()


if __name__ == "__main__":
    main()
