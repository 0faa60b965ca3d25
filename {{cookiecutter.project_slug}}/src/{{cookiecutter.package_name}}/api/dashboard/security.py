"""Who may see the dashboard, and which form posts it trusts.

- Login: HTTP Basic, any user name, the password `DASHBOARD_PASSWORD` (UTF-8), compared in
  constant time. Without the setting the dashboard is not mounted at all (app.py): 404.
- Forms: every action is a POST whose form carries a token, `<issued>.<signature>`, signed with
  HMAC-SHA256 under a key derived from the password, and good for TOKEN_SECONDS. A page on another
  site cannot read one (the same-origin policy), so it cannot make the browser post a form that
  passes, even though the browser would send the Basic credentials with it. A post whose
  `Origin` names another host, or that the browser marks `Sec-Fetch-Site: cross-site`, is
  refused before the token is looked at.
- Every response carries a Content-Security-Policy that allows only the dashboard's own script
  and style: were a job's text ever rendered as HTML, the browser would still not run it.
"""

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from ..dependencies import AppSettings

# How long a page's forms stay good: the live part of the page gets fresh ones every refresh.
TOKEN_SECONDS = 12 * 3600
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def password_of(settings: AppSettings) -> str:
    # app.py mounts the dashboard only when the password is set.
    assert settings.dashboard_password is not None
    return settings.dashboard_password.get_secret_value()


def basic_password(request: Request) -> bytes:
    """The password of the request's HTTP Basic credentials, as sent; b"" if there are none."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return b""
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        return b""
    _, separator, password = decoded.partition(b":")
    return password if separator else b""


async def login(request: Request, settings: AppSettings) -> None:
    """Let the request through with the right password (any user name); else 401."""
    expected = password_of(settings).encode()
    if not secrets.compare_digest(basic_password(request), expected):
        raise HTTPException(
            401,
            "the dashboard needs its password (DASHBOARD_PASSWORD), any user name",
            headers={"WWW-Authenticate": 'Basic realm="dashboard", charset="UTF-8"'},
        )


def signing_key(password: str) -> bytes:
    """The forms' key: derived from the password, so changing it voids every issued token."""
    return hmac.new(password.encode(), b"dashboard form tokens", hashlib.sha256).digest()


def _signature(key: bytes, issued: int) -> str:
    return hmac.new(key, str(issued).encode(), hashlib.sha256).hexdigest()


def form_token(settings: AppSettings, now: float | None = None) -> str:
    """A token for the forms of a page rendered now."""
    issued = int(time.time() if now is None else now)
    return f"{issued}.{_signature(signing_key(password_of(settings)), issued)}"


def token_is_valid(settings: AppSettings, token: str, now: float | None = None) -> bool:
    issued_text, _, signature = token.partition(".")
    if not issued_text.isdigit():
        return False
    issued = int(issued_text)
    age = (time.time() if now is None else now) - issued
    expected = _signature(signing_key(password_of(settings)), issued)
    return 0 <= age <= TOKEN_SECONDS and hmac.compare_digest(signature, expected)


def check_form_post(request: Request, settings: AppSettings, token: str) -> None:
    """Refuse (403) a post from another site, or without a good token from one of our pages."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, f"a form from another site ({origin}) cannot act here")
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise HTTPException(403, "a form from another site cannot act here")
    if not token_is_valid(settings, token):
        raise HTTPException(
            403, "the form's token is missing, wrong or expired: reload the dashboard, try again"
        )
