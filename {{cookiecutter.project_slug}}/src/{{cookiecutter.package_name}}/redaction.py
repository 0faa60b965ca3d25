# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Secrets out of every error text and log line, and a cap on how long an error text is kept.

An exception's message is written by code the project does not control: a database driver, an
HTTP client, code that formats a connection string into its error.
{%- if cookiecutter.cache_backend != "none" %} Whatever it says is stored
with the job (its result, its dead letter, the dashboard's activity record), shown on the job
routes, the dashboard and the CLI, logged, and sent to Sentry.
{%- else %} Whatever it says is logged and
sent to Sentry.
{%- endif %}

So every such text passes through `redact()` first, which replaces with `***`:

- the user and password of any URL (`postgres://app:pw@host` -> `postgres://***@host`), also
  one whose password holds a raw `@` or `/`;
- the value of every secret setting (each `SecretStr` in config.py: SENTRY_DSN, ...) and the
  password in every URL setting{% if cookiecutter.cache_backend != "none" %} (REDIS_URL){% endif %}, wherever it appears, as written
  and percent-decoded.

`error_text()` is the one way an error becomes stored text: "<type>: <message>", redacted, and
cut to `limit` characters with a note saying so. The log keeps up to LOG_TEXT_LIMIT of it.
"""

import re
from typing import Any
from urllib.parse import quote, unquote

from pydantic import AnyUrl, SecretStr

from .config import Settings, get_settings

MASK = "***"
# Error texts kept with a job (result, dead letter), in characters.
ERROR_TEXT_LIMIT = 2_000
# A log line's message and traceback, in characters: the full error, within reason.
LOG_TEXT_LIMIT = 16_000
# Secret values shorter than this are not searched for: masking every "ab" would garble the
# text and tell a reader the secret's length anyway.
SHORTEST_SECRET = 4

# scheme://userinfo@ : the userinfo runs to the last "@" before the URL ends (whitespace or a
# quote), so that a password with a raw "@" or "/" is masked whole.
_URL_USERINFO = re.compile(r"""(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s'"<>]*@""")


def secret_values() -> list[str]:
    """The secret settings' values, longest first (so a secret containing another is masked
    whole); empty when the settings cannot be read. Worked out once per settings object (every
    log line asks)."""
    global _secrets_of
    try:
        settings = get_settings()
    except Exception:  # a bad setting is reported by its own entry point; redact URLs anyway
        return []
    if _secrets_of is None or _secrets_of[0] is not settings:
        _secrets_of = (settings, _secrets_in(settings))
    return _secrets_of[1]


_secrets_of: tuple[Settings, list[str]] | None = None


def _secrets_in(settings: Settings) -> list[str]:
    values: set[str] = set()
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            values.add(value.get_secret_value())
        elif isinstance(value, AnyUrl) and value.password:
            values.add(value.password)
    found = {form for value in values for form in (value, unquote(value), quote(value, safe=""))}
    return sorted((v for v in found if len(v) >= SHORTEST_SECRET), key=len, reverse=True)


def redact(text: str) -> str:
    """`text` with URL credentials and secret settings' values replaced by `***`."""
    text = _URL_USERINFO.sub(rf"\g<scheme>{MASK}@", text)
    for secret in secret_values():
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def cap(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters and a note that the rest was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... [cut: {len(text):,} characters in all]"


def error_message(error: BaseException, limit: int = ERROR_TEXT_LIMIT) -> str:
    """The exception's message, redacted and capped: what is stored and shown for it."""
    return cap(redact(str(error)), limit)


def error_text(error: BaseException, limit: int = ERROR_TEXT_LIMIT) -> str:
    """The error as "<type>: <message>", redacted and capped (the type alone without a message)."""
    message = error_message(error, limit)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def redacted(value: Any) -> Any:
    """`value` with every string in it redacted, dicts and lists walked: for a Sentry event, whose
    exception values, messages, breadcrumbs and local variables may all hold a secret."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redacted(item) for item in value]
    return value
