"""The admin service's exception tree.

Nothing under `app.services.admin` imports FastAPI: these exceptions carry the
offending field and a message safe to show to an admin, and `app.api.errors`
maps them to HTTP answers (422, 409, 404).
"""

from __future__ import annotations


class AdminError(Exception):
    """Base of the admin service errors.

    Attributes:
        field: dotted path of the offending field, or None.
        message: readable explanation, safe to show to an admin.
    """

    code = "admin_error"

    def __init__(self, message: str, field: str | None = None) -> None:
        """Keep the message and the field."""
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationFailed(AdminError):
    """A field holds a value the gateway cannot use (HTTP 422)."""

    code = "validation_error"

    def __init__(self, field: str, message: str) -> None:
        """Name the field first, as in `ValidationFailed("url", "must be http(s)")`."""
        super().__init__(message, field)


class NameConflict(AdminError):
    """Another entity already has this name (HTTP 409)."""

    code = "name_conflict"

    def __init__(self, entity: str, name: str) -> None:
        """Describe the clash of `name` among `entity` rows."""
        super().__init__(f"a {entity} named {name!r} already exists", "name")


class NotFound(AdminError):
    """No entity with this id (HTTP 404)."""

    code = "not_found"

    def __init__(self, entity: str, key: object) -> None:
        """Describe the missing `entity` with id or name `key`."""
        super().__init__(f"{entity} {key} not found")
