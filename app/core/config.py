"""Gateway settings, read once from the environment and `.env` (pydantic-settings).

Every name here is documented in `.env.example`. Nothing else in the project reads
`os.environ`; code gets a `Settings` through `get_settings()` or dependency injection.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Passwords that count as "not set" for the admin surface (issue: no weak default).
WEAK_PASSWORDS = frozenset({"", "admin", "password", "changeme", "change-me", "secret", "asterisk", "123456"})


class Settings(BaseSettings):
    """All gateway configuration. Field names map to upper-case environment variables.

    Units are in the field names (`*_SECONDS`, `*_MS`, `*_BYTES`, `*_CHARS`).
    """

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # --- LLM (each provider reads its own variables: app/services/providers/llm/) ------
    default_ai_model: str = "openai"
    fallback_ai_model: str | None = None
    llm_request_timeout_seconds: float = 10.0
    llm_max_retries: int = 2
    #: Field values for providers by ``"<capability>:<name>"`` that win over their own
    #: variables (the CLI's offline model, tests). Not read from the environment in practice.
    provider_overrides: dict[str, dict[str, Any]] = Field(default_factory=dict, repr=False)

    # --- Redis (conversation memory) -----------------------------------------------
    redis_url: str | None = None
    redis_host: str = "localhost"
    redis_port: int = 6379
    redis_password: SecretStr | None = None
    redis_db: int = 0
    redis_key_prefix: str = "aigw:"
    redis_timeout_seconds: float = 0.5
    conversation_ttl_seconds: int = 3600
    conversation_max_turns: int = 20

    # --- Database --------------------------------------------------------------------
    database_url: str = "sqlite:///./gateway.db"
    prompt_cache_ttl_seconds: float = 5.0

    # --- Admin web UI and REST API ---------------------------------------------------
    web_ui_username: str = "admin"
    web_ui_password: SecretStr | None = None
    secret_key: SecretStr | None = None
    dev_mode: bool = False
    #: Where a `DEV_MODE` run keeps its generated admin password (mode 0600).
    dev_admin_password_file: Path = Path(".gateway-admin-password")
    login_max_failures: int = 10
    login_window_seconds: int = 300

    # --- Asterisk ARI ----------------------------------------------------------------
    ari_enabled: bool = True
    asterisk_ari_url: str = "http://localhost:8088"
    asterisk_ari_username: str = "asterisk"
    asterisk_ari_password: SecretStr = SecretStr("asterisk")
    asterisk_app_name: str = "ai_ari_app"
    ari_max_connections: int = Field(default=50, ge=1, le=90)
    ari_request_timeout_seconds: float = 5.0
    ari_reconnect_min_seconds: float = 0.5
    ari_reconnect_max_seconds: float = 30.0
    #: `/readyz` answers 503 while the Stasis application is not connected (false: admin-only
    #: deployments, where only the database and Redis count).
    readyz_require_ari: bool = True

    # --- Call handling ---------------------------------------------------------------
    max_concurrent_calls: int = Field(default=100, ge=1)
    ai_turn_timeout_seconds: float = Field(default=15.0, gt=0)
    max_user_input_chars: int = 2000
    max_stasis_arg_chars: int = 4000
    default_fallback_text: str = "Sorry, I can't help with that right now. Please hold for an agent."

    # --- Voice conversations (AI_MODE=voice) ------------------------------------------
    #: ``client``: Asterisk connects to our media listener (websocket_client.conf);
    #: ``server``: we connect to Asterisk's ``/media/<connection id>``.
    voice_media_connection_type: Literal["client", "server"] = "client"
    #: Where the media listener accepts Asterisk's connections (client mode); port 0 = any free one.
    voice_media_listen_host: str = "0.0.0.0"
    voice_media_listen_port: int = Field(default=8765, ge=0, le=65535)
    #: The ``websocket_client.conf`` section Asterisk dials for us (externalMedia ``external_host``).
    voice_websocket_client_id: str = "media_connection1"
    #: Asterisk's HTTP server for server mode, ``ws://pbx:8088`` ('' = from ASTERISK_ARI_URL).
    voice_server_media_url: str = ""
    voice_codec: Literal["ulaw", "slin16"] = "ulaw"
    voice_stt_provider: str = "pocketsphinx"
    voice_tts_provider: str = "espeak"
    voice_max_duration_seconds: float = Field(default=600.0, gt=0)
    #: Played through ARI when the gateway cannot speak (TTS or the media socket down).
    voice_fallback_sound: str = "sound:an-error-has-occured"
    #: End of turn by pipecat's smart-turn model instead of the prompt's end-of-turn silence.
    voice_smart_turn: bool = False
    #: How far ahead of real time agent audio is sent to Asterisk, in ms.
    voice_max_lead_ms: int = Field(default=300, ge=60, le=5000)

    # --- HTTP tools ------------------------------------------------------------------
    tool_default_timeout_seconds: float = 5.0
    tool_max_response_bytes: int = 8192
    # Optional allow-list (names, IPs, CIDRs); empty allows public and internal hosts.
    # Link-local/metadata are always refused (app.services.agent.host_policy).
    tool_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # --- Logging ---------------------------------------------------------------------
    debug_mode: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("tool_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        """Accept a comma-separated string for `TOOL_ALLOWED_HOSTS`."""
        if isinstance(value, str):
            return [h.strip().lower() for h in value.split(",") if h.strip()]
        return value

    @field_validator(
        "redis_password",
        "web_ui_password",
        "secret_key",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        """Treat an empty variable (`WEB_UI_PASSWORD=`) as unset."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    # --- Derived values --------------------------------------------------------------
    @property
    def ari_base_url(self) -> str:
        """ARI REST root, e.g. ``http://pbx:8088/ari`` (accepts the URL with or without /ari)."""
        url = self.asterisk_ari_url.rstrip("/")
        return url if url.endswith("/ari") else f"{url}/ari"

    @property
    def ari_events_url(self) -> str:
        """WebSocket URL of the ARI event stream for our Stasis application (ARI events.json)."""
        base = self.ari_base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        return f"{base}/events?app={quote(self.asterisk_app_name)}&subscribeAll=false"

    @property
    def voice_media_url(self) -> str:
        """Asterisk's media WebSocket root for server mode, e.g. ``ws://pbx:8088``."""
        if self.voice_server_media_url:
            return self.voice_server_media_url.rstrip("/")
        root = self.asterisk_ari_url.rstrip("/").removesuffix("/ari")
        return root.replace("https://", "wss://", 1).replace("http://", "ws://", 1)

    @property
    def effective_redis_url(self) -> str:
        """`REDIS_URL` when set, else a URL built from host, port, password and db."""
        if self.redis_url:
            return self.redis_url
        auth = ""
        if self.redis_password is not None:
            auth = f":{quote(self.redis_password.get_secret_value(), safe='')}@"
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/{self.redis_db}"

    @property
    def async_database_url(self) -> str:
        """`DATABASE_URL` with an asyncio driver (aiosqlite, asyncpg) filled in."""
        url = self.database_url
        for plain, driver in (
            ("sqlite://", "sqlite+aiosqlite://"),
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
        ):
            if url.startswith(plain):
                return driver + url[len(plain) :]
        return url

    @property
    def admin_password_problem(self) -> str | None:
        """Why the admin surface must refuse to serve, or None when the password is usable."""
        if self.web_ui_password is None:
            return "WEB_UI_PASSWORD is not set"
        if self.web_ui_password.get_secret_value().strip().lower() in WEAK_PASSWORDS:
            return "WEB_UI_PASSWORD is a well-known default"
        return None


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once (cached)."""
    return Settings()
