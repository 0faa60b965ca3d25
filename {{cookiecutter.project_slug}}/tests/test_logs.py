"""Log lines: text by default, one JSON object per line with LOG_FORMAT=json."""

import json
import logging
from collections.abc import Iterator

import pytest

from {{ cookiecutter.package_name }}.logs import configure_logging

logger = logging.getLogger("{{ cookiecutter.package_name }}.tests")


@pytest.fixture(autouse=True)
def restore_text_logging() -> Iterator[None]:
    yield
    configure_logging("INFO", "text")


def test_json_lines_have_time_level_logger_message_and_known_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")
    logger.info("hello %s", "world", extra={"job_id": "abc", "duration_ms": 1.5})
    logger.debug("below LOG_LEVEL: not written")
    try:
        raise ValueError("<boom>")
    except ValueError:
        logger.exception("it failed")

    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["time"].endswith("Z")
    assert first["time"][10] == "T"
    assert {key: first[key] for key in ("level", "logger", "message", "job_id", "duration_ms")} == {
        "level": "INFO",
        "logger": logger.name,
        "message": "hello world",
        "job_id": "abc",
        "duration_ms": 1.5,
    }
    assert "function" not in first  # unknown fields are left out, not null
    assert second["level"] == "ERROR"
    assert "ValueError: <boom>" in second["exception"]


def test_text_is_the_default_and_keeps_its_short_format(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("DEBUG", "text")
    logger.debug("hello")
    line = capsys.readouterr().err.strip()
    assert line.endswith(": hello")
    assert not line.startswith("{")


def test_other_libraries_log_warnings_and_up_through_the_same_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("DEBUG", "json")
    logging.getLogger("some.library").info("not shown")
    logging.getLogger("some.library").warning("shown")
    [line] = capsys.readouterr().err.splitlines()
    assert json.loads(line)["message"] == "shown"
