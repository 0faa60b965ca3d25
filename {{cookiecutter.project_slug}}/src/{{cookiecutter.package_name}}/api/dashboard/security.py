# Template file, kept current by `cruft update`: yours are listed in README.md, "Your code".
"""Who may see the dashboard, and which form posts it trusts.

- Login: HTTP Basic, any user name, the password `DASHBOARD_PASSWORD` (UTF-8), compared in
  constant time. Without the setting the dashboard is not mounted at all (app.py): 404.
- Guessing: a client address that sends LOGIN_FAILURES wrong passwords within LOCKOUT_SECONDS
  is refused (429, `Retry-After`) for LOCKOUT_SECONDS, the right password too; counted in this
  process (`LoginLimiter`), by `request.client.host`, which behind a proxy is the proxy's
  address unless uvicorn is told to trust its `X-Forwarded-For` (FORWARDED_ALLOW_IPS).
- Forms: every action is a POST whose form carries a token, `<issued>.<signature>`, signed with
  HMAC-SHA256 under a key derived from the password, and good for TOKEN_SECONDS. A page on another
  site cannot read one (the same-origin policy), so it cannot make the browser post a form that
  passes, even though the browser would send the Basic credentials with it. A post whose
  `Origin` names another host, or that the browser marks `Sec-Fetch-Site: cross-site`, is
  refused before the token is looked at.
- Whatever a client sends (headers, tokens, form fields) is checked for its shape before it is
  used: a malformed one is refused like a wrong one (401, 403), never answered with a 500.
- Every response carries a Content-Security-Policy that allows only the dashboard's own script
  and style: were a job's text ever rendered as HTML, the browser would still not run it.
"""

import base64
import hashlib
import hmac
import math
import re
import secrets
import time
from collections import OrderedDict, deque
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from ..dependencies import AppSettings

# How long a page's forms stay good: the live part of the page gets fresh ones every refresh.
TOKEN_SECONDS = 12 * 3600
# A form token as form_token() makes it: <issued, unix seconds>.<HMAC-SHA256, hex>. ASCII digits
# only: str.isdigit() takes "²" (which int() refuses) and int() takes "\u0661" (Arabic-Indic).
TOKEN_PATTERN = re.compile(r"([0-9]{1,12})\.([0-9a-f]{64})")
# Wrong passwords one client address may send within LOCKOUT_SECONDS before it is locked out
# for LOCKOUT_SECONDS: 10 a minute instead of the ~1,600 a second one client managed unlimited.
LOGIN_FAILURES = 10
LOCKOUT_SECONDS = 60
# Client addresses the limiter remembers at most; the ones that failed longest ago go first.
CLIENTS_TRACKED = 10_000
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


def basic_password(request: Request) -> bytes | None:
    """The password of the request's HTTP Basic credentials, as sent (any bytes); None if it
    sends none; b"" if they are malformed (not base64, not ASCII, no `user:`)."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return b""
    try:
        # Starlette decodes header bytes as Latin-1: a non-ASCII byte is a ValueError here.
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except ValueError:  # binascii.Error (not base64) is one
        return b""
    _, separator, password = decoded.partition(b":")
    return password if separator else b""


def operator(request: Request) -> str:
    """Who sent a request that passed `login`, for the actions' log lines: the user name of its
    Basic credentials (any is accepted, so it is what the operator says they are) and the client
    address, as "name@address"; the name cut at 64 characters, anything unprintable as "?"."""
    header = request.headers.get("authorization", "")
    try:
        decoded = base64.b64decode(header.partition(" ")[2].strip(), validate=True)
        name = decoded.partition(b":")[0].decode("utf-8")
    except ValueError:  # login let it through, so it decodes; but never fail a log line
        name = ""
    name = "".join(char if char.isprintable() else "?" for char in name[:64]) or "-"
    return f"{name}@{request.client.host if request.client else '-'}"


class LoginLimiter:
    """Wrong passwords per client address, in this process: LOGIN_FAILURES of them within
    LOCKOUT_SECONDS lock the address out for LOCKOUT_SECONDS.

    A right password does not clear the count: behind a proxy every client shares one address,
    and an operator's page refreshing every 2 s would otherwise give a guesser a fresh 10.
    """

    def __init__(self) -> None:
        self.failures: OrderedDict[str, deque[float]] = OrderedDict()
        self.locked_until: dict[str, float] = {}

    def retry_after(self, client: str, now: float) -> int:
        """Seconds until `client` may try again; 0 if it may now."""
        until = self.locked_until.get(client, 0.0)
        if until <= now:
            self.locked_until.pop(client, None)
            return 0
        return max(1, math.ceil(until - now))

    def failed(self, client: str, now: float) -> None:
        """Count a wrong password from `client`; lock it out at the LOGIN_FAILURES-th."""
        recent = self.failures.pop(client, None) or deque()
        recent.append(now)
        while recent and recent[0] <= now - LOCKOUT_SECONDS:
            recent.popleft()
        if len(recent) >= LOGIN_FAILURES:
            self.locked_until[client] = now + LOCKOUT_SECONDS
        else:
            self.failures[client] = recent  # the newest failure last
        while len(self.failures) > CLIENTS_TRACKED:
            self.failures.popitem(last=False)
        if len(self.locked_until) > CLIENTS_TRACKED:
            for address, until in list(self.locked_until.items()):
                if until <= now:
                    del self.locked_until[address]


def clock() -> float:
    """The limiter's clock (seconds, monotonic); tests replace it to move time on."""
    return time.monotonic()


def limiter_of(request: Request) -> LoginLimiter:
    """The app's limiter, made on first use: each app (each test's) counts afresh."""
    limiter: LoginLimiter | None = getattr(request.app.state, "dashboard_logins", None)
    if limiter is None:
        limiter = request.app.state.dashboard_logins = LoginLimiter()
    return limiter


async def login(request: Request, settings: AppSettings) -> None:
    """Let the request through with the right password (any user name); else 401, or 429 for a
    client address locked out after too many wrong ones."""
    limiter = limiter_of(request)
    client = request.client.host if request.client else ""
    now = clock()
    wait = limiter.retry_after(client, now)
    if wait:
        raise HTTPException(
            429,
            f"too many wrong dashboard passwords from {client or 'this client'}: "
            f"try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    sent = basic_password(request)
    if sent is not None and secrets.compare_digest(sent, password_of(settings).encode()):
        return
    if sent is not None:  # a browser's first request, without credentials, is no guess
        limiter.failed(client, now)
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
    """Whether `token` is one form_token() made, under the current password, TOKEN_SECONDS ago
    at most; False for anything else, whatever its shape."""
    match = TOKEN_PATTERN.fullmatch(token)
    if match is None:
        return False
    issued = int(match[1])
    age = (time.time() if now is None else now) - issued
    expected = _signature(signing_key(password_of(settings)), issued)
    return 0 <= age <= TOKEN_SECONDS and hmac.compare_digest(match[2], expected)


def origin_host(origin: str) -> str | None:
    """The host (and port) an `Origin` header names; None for one that is not a URL."""
    try:
        return urlsplit(origin).netloc
    except ValueError:  # "http://[::1": an unclosed IPv6 address
        return None


def check_form_post(request: Request, settings: AppSettings, token: str) -> None:
    """Refuse (403) a post from another site, or without a good token from one of our pages."""
    origin = request.headers.get("origin")
    if origin is not None and origin_host(origin) != request.headers.get("host"):
        raise HTTPException(403, f"a form from another site ({origin!r}) cannot act here")
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise HTTPException(403, "a form from another site cannot act here")
    if not token_is_valid(settings, token):
        raise HTTPException(
            403, "the form's token is missing, wrong or expired: reload the dashboard, try again"
        )
