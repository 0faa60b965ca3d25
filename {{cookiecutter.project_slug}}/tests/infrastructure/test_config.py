# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.infrastructure.settings import (
    IGNORE_DOTENV,
    TemplateSettings,
    describe_invalid_settings,
)


def test_defaults_describe_this_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APP_NAME", raising=False)
    settings = Settings(_env_file=None)

    assert settings.app_name == "{{ cookiecutter.project_name }}"
{%- if cookiecutter.cache_backend != "none" %}
    assert str(settings.redis_url) == "redis://localhost:{{ cookiecutter.redis_port }}/0"
    assert settings.queue_name == "{" + "{{ cookiecutter.project_slug }}:default}"
{%- endif %}


def test_tests_read_no_env_file_and_a_project_does(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The test session sets IGNORE_DOTENV (conftest.py): a developer's `.env` changes no test.
    (tmp_path / ".env").write_text("LOG_LEVEL=ERROR\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    in_tests = Settings()
    monkeypatch.delenv(IGNORE_DOTENV)
    in_the_project = Settings()

    assert (in_tests.log_level, in_the_project.log_level) == ("INFO", "ERROR")


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
{%- if cookiecutter.cache_backend != "none" %}
    monkeypatch.setenv("REDIS_URL", "rediss://user:secret@redis.internal:6380/2")
{%- endif %}
    settings = Settings(_env_file=None)

    assert settings.log_level == "DEBUG"
{%- if cookiecutter.cache_backend != "none" %}
    assert settings.redis_url.host == "redis.internal"
    assert settings.redis_url.port == 6380
{%- endif %}


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LOG_LEVEL", "LOUD"),
{%- if cookiecutter.cache_backend != "none" %}
        ("REDIS_URL", "http://localhost:6379"),
        ("REDIS_SSL_CA_CERTS", "/no/such/ca.pem"),
        ("REDIS_SENTINELS", "sentinel-1"),
        ("WORKER_MAX_JOBS", "0"),
{%- endif %}
    ],
)
def test_bad_values_are_refused_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=variable.lower()):
        Settings(_env_file=None)


def test_invalid_settings_are_described_in_one_line_without_their_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
{%- if cookiecutter.cache_backend != "none" %}
    monkeypatch.setenv("REDIS_URL", "http://:hunter2@localhost:6379")
{%- endif %}
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None)

    message = describe_invalid_settings(raised.value)
    assert message.startswith("invalid settings (environment or .env): LOG_LEVEL: ")
{%- if cookiecutter.cache_backend != "none" %}
    assert "; REDIS_URL: URL scheme should be" in message
    assert "hunter2" not in message
{%- endif %}
    assert "\n" not in message


{%- if cookiecutter.cache_backend != "none" %}


def pieces(secret: str) -> set[str]:
    """Every part of `secret` 3 characters long or longer: none may be shown."""
    return {secret[i:j] for i in range(len(secret)) for j in range(i + 3, len(secret) + 1)}


# REDIS_URLs a URL parser reads without complaint but wrongly, each with its password: a part of
# the password becomes the host, port, database or query, and would be shown as such.
MISWRITTEN_URLS = [
    ("redis://:Xy@zz/Secretpart9@127.0.0.1:46379/0", "Xy@zz/Secretpart9"),  # issue 9's
    ("redis://app:Qv7@Wk2@redis.internal:6379/0", "Qv7@Wk2"),  # a raw @
    ("redis://:Jd8/Hm3z@redis.internal:6379/1", "Jd8/Hm3z"),  # a raw /
    ("redis://:Tq4?Lp9x@redis.internal:6379/0", "Tq4?Lp9x"),  # a raw ?
    ("redis://:Zn5#Rc6w@redis.internal:6379/0", "Zn5#Rc6w"),  # a raw #
    ("redis://:Dr5@Lw8:Ny3@redis.internal/0", "Dr5@Lw8:Ny3"),  # a raw @ and :
    ("rediss://:Gk2%Wq8v@redis.internal:6380/0", "Gk2%Wq8v"),  # a % that encodes nothing
    ("redis://:Vb6@redis.internal:Kp7Lm/0", "Kp7Lm"),  # a port that is not a number
    ("redis://:Vb6@redis.internal:6379/Yc4Rt", "Yc4Rt"),  # a path that is not a database
    ("redis://:Vb6@redis.internal:6379/0?Wm9Fs", "Wm9Fs"),  # a query arq does not read
]


@pytest.mark.parametrize(("url", "password"), MISWRITTEN_URLS)
def test_a_miswritten_redis_url_is_refused_without_showing_any_part_of_it(
    monkeypatch: pytest.MonkeyPatch, url: str, password: str
) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    with pytest.raises(ValidationError) as raised:
        Settings(_env_file=None)

    message = describe_invalid_settings(raised.value)
    assert message.startswith("invalid settings (environment or .env): REDIS_URL: ")
    assert "\n" not in message
    if password not in ("Kp7Lm", "Yc4Rt", "Wm9Fs"):
        assert "percent-encode special characters in the user and password" in message
    # Not in the line, nor in the error itself (a traceback prints it).
    for shown in (message, str(raised.value), repr(raised.value)):
        assert not {piece for piece in pieces(password) if piece in shown}, shown


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost",
        "redis://localhost:6379/0",
        "redis://redis.internal:6379/",
        "rediss://app:p%40ss%2Fw%3Fr%23d@redis.internal:6380/2",
        "redis://:pass:with:colons@127.0.0.1:6379/1",
        "redis://[::1]:6379/0",
        "redis://localhost:6379?db=3",
    ],
)
def test_well_written_redis_urls_are_taken(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("REDIS_URL", url)

    assert Settings(_env_file=None).redis_url.scheme in ("redis", "rediss")
{%- endif %}


def test_env_example_lists_every_template_setting_with_its_default() -> None:
    # The template's settings: the ones you add to config.py are yours to list (or not).
    example = (Path(__file__).parents[2] / ".env.example").read_text()
    # NAME=default, or "# NAME=example" for a setting that is off unless set.
    lines = re.findall(r"^(# )?([A-Z][A-Z0-9_]*)=(.*)$", example, re.MULTILINE)
    documented = {name: (bool(commented), value) for commented, name, value in lines}

    for name, field in TemplateSettings.model_fields.items():
        if name.startswith("retired_"):
            continue  # refused with the step to take instead: not a setting to list
        commented_out, value = documented[name.upper()]
        default = field.default
        shown = ",".join(default) if isinstance(default, list) else str(default)
        if commented_out:
            assert not default, name
        else:
            assert value.strip('"') == shown, name
