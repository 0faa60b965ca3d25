"""Your settings: add a field to `Settings` below, and read it with `get_settings().<field>`.

Each field is read from the environment variable of its name in capitals (`my_field` from
MY_FIELD), or from a local `.env` file. The template's own settings (LOG_LEVEL{% if cookiecutter.cache_backend != "none" %}, REDIS_URL,
WORKER_MAX_JOBS, ...{% else %}, ...{% endif %}) are the fields of `TemplateSettings` in infrastructure/settings.py, which
`cruft update` keeps current; `.env.example` lists them with their defaults.
"""

from functools import lru_cache

from .infrastructure.settings import TemplateSettings


class Settings(TemplateSettings):
    """The service's settings: the template's, and yours below (`name: type = default`)."""


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; tests call `get_settings.cache_clear()` after changing the env."""
    return Settings()
