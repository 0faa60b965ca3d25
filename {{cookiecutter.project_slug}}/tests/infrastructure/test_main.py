# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
from collections.abc import Iterator

import pytest

from {{ cookiecutter.package_name }}.__main__ import main
from {{ cookiecutter.package_name }}.config import get_settings
{%- if cookiecutter.cache_backend != "none" %}
from {{ cookiecutter.package_name }}.infrastructure.local.redis_server import LocalRedisServer, free_port
{%- endif %}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set variables with `environment.setenv`; the settings are read afresh for each test."""
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_main_reports_the_configured_app(
    environment: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
{%- if cookiecutter.cache_backend != "none" %}
    redis_server: LocalRedisServer,
{%- endif %}
) -> None:
    environment.setenv("APP_NAME", "Smoke Test")
    environment.setenv("ENVIRONMENT", "test")
{%- if cookiecutter.cache_backend != "none" %}
    environment.setenv("REDIS_URL", redis_server.url)
{%- endif %}

    main()

{%- if cookiecutter.cache_backend != "none" %}
    assert capsys.readouterr().out == (
        f"Smoke Test is configured for test; Redis answers at {redis_server.url}.\n"
    )
{%- else %}
    assert capsys.readouterr().out == "Smoke Test is configured for test.\n"
{%- endif %}


def test_main_refuses_invalid_settings_in_one_line(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("LOG_LEVEL", "LOUD")

    with pytest.raises(SystemExit, match=r"^invalid settings .*: LOG_LEVEL: "):
        main()
{%- if cookiecutter.cache_backend != "none" %}


def test_main_fails_fast_in_one_line_when_redis_is_unreachable(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("REDIS_URL", f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    environment.setenv("REDIS_CONNECT_RETRIES", "0")

    with pytest.raises(SystemExit, match=r"^cannot reach Redis at redis://:\*\*\*@") as exit:
        main()
    assert "hunter2" not in str(exit.value)
{%- endif %}
