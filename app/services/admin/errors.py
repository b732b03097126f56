"""The admin service's exception tree.

Nothing under `app.services.admin` imports FastAPI: these exceptions carry the
offending field and a message safe to show to an admin, and `app.api.errors`
maps them to HTTP answers (422, 409, 404).

```
AdminError
├── ValidationFailed        422
├── Conflict                409
│   ├── NameConflict
│   └── DefaultPromptRequired
└── NotFound                404
```
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


class Conflict(AdminError):
    """The write would clash with stored state (HTTP 409)."""

    code = "conflict"


class NameConflict(Conflict):
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


class DefaultPromptRequired(Conflict):
    """The default prompt cannot be deleted: calls that name no prompt need it (HTTP 409)."""

    code = "default_prompt_required"

    def __init__(self, name: str) -> None:
        """Explain why the prompt called `name` must stay, and what to do instead."""
        super().__init__(
            f"{name!r} is the default prompt, used by every call that names no prompt; "
            "make another prompt the default first"
        )


class Unavailable(AdminError):
    """What was asked needs a service that cannot serve now, e.g. a TTS provider (HTTP 503)."""

    code = "unavailable"
