import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from {{ cookiecutter.package_name }}.config import Settings, describe_invalid_settings


def test_defaults_describe_this_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("APP_NAME", raising=False)
    settings = Settings(_env_file=None)

    assert settings.app_name == "{{ cookiecutter.project_name }}"
{%- if cookiecutter.cache_backend != "none" %}
    assert str(settings.redis_url) == "redis://localhost:{{ cookiecutter.redis_port }}/0"
    assert settings.queue_name == "{{ cookiecutter.project_slug }}:queue"
{%- endif %}


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


def test_env_example_lists_every_setting_with_its_default() -> None:
    example = (Path(__file__).parents[1] / ".env.example").read_text()
    # NAME=default, or "# NAME=example" for a setting that is off unless set.
    lines = re.findall(r"^(# )?([A-Z][A-Z0-9_]*)=(.*)$", example, re.MULTILINE)
    documented = {name: (bool(commented), value) for commented, name, value in lines}

    for name, field in Settings.model_fields.items():
        commented_out, value = documented[name.upper()]
        if commented_out:
            assert not field.default, name
        else:
            assert value.strip('"') == str(field.default), name
