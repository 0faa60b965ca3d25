"""Command-line entry point: `uv run {{ cookiecutter.project_slug }}` or `python -m {{ cookiecutter.package_name }}`."""

import sys

from pydantic import ValidationError

from .config import describe_invalid_settings, get_settings


def main() -> None:
    try:
        settings = get_settings()
    except ValidationError as error:
        sys.exit(describe_invalid_settings(error))
    print(f"{settings.app_name} is configured for {settings.environment}.")


if __name__ == "__main__":
    main()
