import pytest

from {{ cookiecutter.package_name }}.__main__ import main
from {{ cookiecutter.package_name }}.config import get_settings


def test_main_reports_the_configured_app(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APP_NAME", "Smoke Test")
    monkeypatch.setenv("ENVIRONMENT", "test")
    get_settings.cache_clear()
    try:
        main()
    finally:
        get_settings.cache_clear()

    assert capsys.readouterr().out == "Smoke Test is configured for test.\n"


def test_main_refuses_invalid_settings_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "LOUD")
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit, match=r"^invalid settings .*: LOG_LEVEL: "):
            main()
    finally:
        get_settings.cache_clear()
