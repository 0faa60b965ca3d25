"""Command-line entry point: `uv run {{ cookiecutter.project_slug }}` or `python -m {{ cookiecutter.package_name }}`."""

from .config import get_settings


def main() -> None:
    settings = get_settings()
    print(f"{settings.app_name} is configured for {settings.environment}.")


if __name__ == "__main__":
    main()
