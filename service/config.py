"""Settings: one pydantic-settings model, env prefix ``JOBSTREAM_``, optional TOML file."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from service.errors import ConfigError


class JobOverride(BaseModel):
    """A deployment's changes to one job's declaration; fields left out keep the code's value.

    Cron expressions and timezones are checked when the service starts, with the
    job's name in the error (see ``service.engine.jobs.configure_jobs``).
    """

    model_config = ConfigDict(extra="forbid")

    cron: str | None = Field(default=None, description="e.g. '0 4 * * *' (6 fields: seconds first)")
    timezone: str | None = Field(default=None, description="IANA name, e.g. Europe/Berlin")
    enabled: bool | None = None
    catchup_window_s: float | None = Field(default=None, ge=0)
    overlap: Literal["skip", "queue"] | None = None
    timeout_s: float | None = Field(default=None, gt=0)
    jitter_s: float | None = Field(default=None, ge=0)
    pause_on_failure: bool | None = None
    deadline_s: float | None = Field(default=None, gt=0)
    retry_delays_s: list[float] | None = Field(default=None, description="[] means never retry")


class Settings(BaseSettings):
    """Every knob of jobstream. Environment wins over ``jobstream.toml``."""

    model_config = SettingsConfigDict(
        env_prefix="JOBSTREAM_",
        env_nested_delimiter="__",
        extra="forbid",
        toml_file=os.environ.get("JOBSTREAM_CONFIG_FILE", "jobstream.toml"),
    )

    database_url: SecretStr | None = Field(
        default=None, description="postgresql+asyncpg://user:pass@host:5432/db"
    )
    kafka_bootstrap_servers: str | None = Field(default=None, description="host:port[,host:port]")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_idempotent_producer: bool = Field(
        default=True, description="on for real Kafka; the embedded Tansu broker needs it off"
    )
    kafka_partitions: int = Field(default=6, ge=1, le=1000)
    kafka_replication_factor: int = Field(default=1, ge=1, le=10, description="3 in production")
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1000)
    kafka_heartbeat_interval_ms: int = Field(default=1_000, ge=100)
    kafka_max_poll_interval_ms: int = Field(
        default=300_000,
        ge=1000,
        description="a consumer must poll again within it or leave its group: a fetch is "
        "decided within 60 % of it, a slower handler fails as HandlerTimeout (retried)",
    )
    kafka_max_partition_fetch_bytes: int = Field(
        default=128 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="bytes one fetch brings per partition of a handler's source topic: "
        "small keeps batches spread over partitions, large is faster on a backlog",
    )
    kafka_fetch_max_wait_ms: int = Field(
        default=500,
        ge=0,
        le=60_000,
        description="longest a fetch waits at the broker for data (dev: 20 on Tansu)",
    )

    batch_max_records: int = Field(
        default=500, ge=1, le=100_000, description="messages per batch for batch handlers"
    )
    batch_max_wait_ms: int = Field(
        default=20, ge=0, le=60_000, description="longest wait to fill a batch"
    )
    consume_batches: bool = Field(
        default=True,
        description="false: batch handlers also take one message per transaction "
        "(for comparison and debugging)",
    )

    topic_prefix: str = Field(default="", max_length=100, pattern=r"^[A-Za-z0-9._-]*$")
    group_id: str = Field(default="jobstream", min_length=1, max_length=200)
    source: str = Field(default="jobstream", min_length=1, description="CloudEvents source")

    retry_delays_s: list[float] = Field(default=[1, 2, 4, 8, 16])
    retry_jitter: float = Field(default=0.1, ge=0, le=1)

    relay_batch_size: int = Field(default=1000, ge=1, le=100_000)
    relay_min_poll_s: float = Field(default=0.005, gt=0)
    relay_max_poll_s: float = Field(default=0.25, gt=0)
    relay_wakeup: Literal["poll", "notify"] = Field(
        default="poll",
        description="poll: adaptive polling; notify: writers pg_notify on commit and the "
        "relay LISTENs (polling at relay_max_poll_s as a safety net)",
    )

    orphan_threshold_days: int = Field(default=7, ge=1, le=3650)
    dlq_retention_days: int = Field(default=30, ge=1)
    outbox_retention_days: int = Field(default=7, ge=1)
    inbox_retention_days: int = Field(default=14, ge=1)

    metrics_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="serve /metrics on this port in worker, relay and clock processes",
    )
    lag_interval_s: float = Field(default=15, gt=0, description="consumer lag measuring period")
    jobs: dict[str, JobOverride] = Field(
        default_factory=dict,
        description='per-job overrides: {"claims.release-orphaned": {"cron": "0 4 * * *"}}',
    )
    job_concurrency: int = Field(default=4, ge=1, le=100, description="runs at once per worker")
    job_poll_s: float = Field(default=1.0, gt=0, description="executor poll besides LISTEN")
    job_stall_check_s: float = Field(default=5.0, gt=0, description="stalled-run sweep interval")
    job_result_rows: int = Field(default=100, ge=0, le=10_000, description="rows kept per run")
    backfill_max_slots: int = Field(default=1000, ge=1, le=1_000_000)
    clock_poll_s: float = Field(default=1.0, gt=0, description="longest clock sleep")
    clock_standby_retry_s: float = Field(default=1.0, gt=0, description="standby lock retry")
    clock_scope_refresh_s: float = Field(default=60.0, gt=0, description="re-list job scopes")
    alerts_channel: str = Field(default="log", min_length=1, max_length=50)
    alerts_recipient: str = Field(default="ops", min_length=1, max_length=128)

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    admin_token: SecretStr | None = Field(
        default=None, description="bootstrap admin token (stored hashed at start)"
    )

    notifier_sink: Literal["log", "webhook"] = Field(
        default="log", description="where notifications go: a log line, or a signed webhook"
    )
    notifier_webhook_url: AnyHttpUrl | None = Field(
        default=None, description="the webhook the notifier POSTs to (notifier_sink=webhook)"
    )
    notifier_webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key for the X-Jobstream-Signature header"
    )
    notifier_webhook_timeout_s: float = Field(default=5.0, gt=0, le=120)

    crash_at: str | None = Field(
        default=None,
        description="test only: SIGKILL this process at a named crash point, e.g. "
        "processing.after_commit:3 (see service/engine/faults.py)",
    )

    fault_fail_source: str | None = Field(
        default=None, description="test only: events from this source always fail (transient)"
    )
    fault_slow_source: str | None = Field(
        default=None, description="test only: events from this source are handled slowly"
    )
    fault_slow_s: float = Field(
        default=0.0, ge=0, le=3600, description="test only: seconds per slow event"
    )

    state_dir: Path = Field(default=Path(".jobstream"), description="embedded stack data folder")
    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("crash_at")
    @classmethod
    def _crash_point(cls, value: str | None) -> str | None:
        if value is not None:
            from service.engine.faults import parse

            parse(value)
        return value

    @field_validator("retry_delays_s")
    @classmethod
    def _delays(cls, value: list[float]) -> list[float]:
        if not value or any(d <= 0 for d in value):
            raise ValueError("give one or more positive delays in seconds, e.g. [1, 2, 4, 8, 16]")
        return value

    @model_validator(mode="after")
    def _webhook_complete(self) -> Settings:
        if self.notifier_sink == "webhook" and (
            self.notifier_webhook_url is None or self.notifier_webhook_secret is None
        ):
            raise ValueError(
                "notifier_sink=webhook needs JOBSTREAM_NOTIFIER_WEBHOOK_URL and "
                "JOBSTREAM_NOTIFIER_WEBHOOK_SECRET"
            )
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    def with_overrides(self, **updates: Any) -> Settings:
        """A validated copy with some fields replaced (``model_copy`` skips validation)."""
        return type(self).model_validate({**self.model_dump(), **updates})

    def as_env(self, **overrides: Any) -> dict[str, str]:
        """The ``JOBSTREAM_*`` variables that give another process these settings.

        Only what differs from the defaults (plus ``overrides``), secrets in clear:
        for starting ``jobstream`` subprocesses (fault suite, benchmarks, CLI tests).
        """
        values = self.model_dump(mode="json", exclude_defaults=True)
        for name in values:
            secret = getattr(self, name)
            if isinstance(secret, SecretStr):
                values[name] = secret.get_secret_value()
        values.update(overrides)
        env: dict[str, str] = {}
        for name, value in values.items():
            if value is None:
                continue
            if isinstance(value, (list, dict)):
                text = json.dumps(value)
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            env[f"JOBSTREAM_{name.upper()}"] = text
        return env

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise ConfigError(
                "no database configured: set JOBSTREAM_DATABASE_URL "
                "(e.g. postgresql+asyncpg://user:pass@host:5432/jobstream), "
                "or run `jobstream dev` to start an embedded PostgreSQL"
            )
        return self.database_url.get_secret_value()

    def require_kafka(self) -> str:
        if not self.kafka_bootstrap_servers:
            raise ConfigError(
                "no broker configured: set JOBSTREAM_KAFKA_BOOTSTRAP_SERVERS (e.g. kafka:9092), "
                "or run `jobstream dev` to start an embedded broker"
            )
        return self.kafka_bootstrap_servers

    def kafka_client_options(self) -> dict[str, Any]:
        """Security options shared by every aiokafka client we create."""
        opts: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_sasl_mechanism:
            opts["sasl_mechanism"] = self.kafka_sasl_mechanism
            opts["sasl_plain_username"] = self.kafka_sasl_username
            if self.kafka_sasl_password is not None:
                opts["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        return opts


def load_settings(**overrides: Any) -> Settings:
    """Build Settings, turning a validation error into a ConfigError that names the field."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            if not field:  # a rule across fields: its message names the variables
                lines.append(err["msg"])
                continue
            env = f"JOBSTREAM_{field.upper().replace('.', '__')}"
            lines.append(f"{field} ({env}): {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
