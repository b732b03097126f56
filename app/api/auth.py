"""HTTP Basic authentication of the admin API and web UI, plus CSRF tokens for UI forms.

Credentials are `WEB_UI_USERNAME` / `WEB_UI_PASSWORD`; when the password is missing
or weak, only a generated development password (`GatewayState.admin_password`)
is accepted, and without one the admin surface answers 503 saying why.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from app.api.deps import GatewayDep
from app.api.errors import AdminUnavailable
from app.core.security import constant_time_equals
from app.services.gateway import GatewayState

REALM = "Asterisk AI Gateway"
CSRF_MAX_AGE_SECONDS = 12 * 3600

basic_scheme = HTTPBasic(auto_error=False, realm=REALM, description="WEB_UI_USERNAME / WEB_UI_PASSWORD")


def expected_password(gateway: GatewayState) -> str:
    """The password the admin must present.

    Raises:
        AdminUnavailable: no usable password is configured and none was generated.
    """
    settings = gateway.settings
    problem = settings.admin_password_problem
    if problem is None and settings.web_ui_password is not None:
        return settings.web_ui_password.get_secret_value()
    if gateway.admin_password:
        return gateway.admin_password
    raise AdminUnavailable(
        f"admin interface disabled: {problem or 'no admin password'}; set a strong WEB_UI_PASSWORD"
    )


def check_credentials(gateway: GatewayState, credentials: HTTPBasicCredentials | None) -> str:
    """Verify Basic credentials in constant time and return the user name.

    Both the user name and the password are always compared (no short circuit), so
    the answer time does not tell which one was wrong or how much of it matched.

    Raises:
        AdminUnavailable: no usable admin password (503).
        HTTPException: 401 with a `WWW-Authenticate` challenge.
    """
    password = expected_password(gateway)
    challenge = {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}
    if credentials is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "authentication required", challenge)
    user_ok = constant_time_equals(credentials.username, gateway.settings.web_ui_username)
    password_ok = constant_time_equals(credentials.password, password)
    if not (user_ok & password_ok):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid credentials", challenge)
    return credentials.username


async def require_admin(
    request: Request,
    gateway: GatewayDep,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(basic_scheme)],
) -> str:
    """FastAPI dependency: the authenticated admin's user name.

    Failed logins are counted per client address; past `LOGIN_MAX_FAILURES` in
    `LOGIN_WINDOW_SECONDS` the address gets 429 with `Retry-After`.
    """
    client = request.client.host if request.client else "unknown"
    limiter = gateway.login_limiter
    wait = await limiter.retry_after(client)
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            "too many failed logins; try again later",
            {"Retry-After": str(wait)},
        )
    try:
        return check_credentials(gateway, credentials)
    except HTTPException as exc:
        if exc.status_code == status.HTTP_401_UNAUTHORIZED and credentials is not None:
            await limiter.record_failure(client)
        raise


AdminUser = Annotated[str, Depends(require_admin)]


# --- CSRF -------------------------------------------------------------------------------


def _csrf_key(gateway: GatewayState) -> bytes:
    secret_key = gateway.settings.secret_key
    if secret_key is not None:
        return hashlib.sha256(b"aigw-csrf:" + secret_key.get_secret_value().encode()).digest()
    key = gateway.extras.get("csrf_key")
    if not isinstance(key, bytes):
        key = secrets.token_bytes(32)
        gateway.extras["csrf_key"] = key
    return key


def make_csrf_token(gateway: GatewayState, user: str, now: float | None = None) -> str:
    """A token ``<unix time>.<HMAC-SHA256 hex>`` bound to the user, valid for 12 h."""
    issued = int(time.time() if now is None else now)
    mac = hmac.new(_csrf_key(gateway), f"{user}:{issued}".encode(), hashlib.sha256).hexdigest()
    return f"{issued}.{mac}"


def csrf_token_valid(gateway: GatewayState, user: str, token: str | None) -> bool:
    """Whether `token` came from `make_csrf_token` for `user` and has not expired."""
    if not token or "." not in token:
        return False
    issued_text, _, _mac = token.partition(".")
    if not issued_text.isdigit():
        return False
    issued = int(issued_text)
    if not 0 <= time.time() - issued <= CSRF_MAX_AGE_SECONDS:
        return False
    return constant_time_equals(token, make_csrf_token(gateway, user, issued))
