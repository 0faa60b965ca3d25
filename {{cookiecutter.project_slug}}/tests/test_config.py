from pathlib import Path

import pytest
from pydantic import ValidationError

from {{ cookiecutter.package_name }}.config import Settings


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


def test_env_example_lists_every_setting_with_its_default() -> None:
    example = Path(__file__).parents[1] / ".env.example"
    lines = [line for line in example.read_text().splitlines() if line and line[0] != "#"]
    documented = dict(line.split("=", 1) for line in lines)

    for name, field in Settings.model_fields.items():
        assert documented[name.upper()].strip('"') == str(field.default), name
