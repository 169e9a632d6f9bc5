"""The watch configuration: one TOML file naming the sources, rules, storage, report and alert sinks.

Read with the standard library's ``tomllib`` and checked by Pydantic, so a typo is one line naming the key
(``source.0.url: field required``), not a traceback mid-run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from maskwatch.errors import InputError
from maskwatch.settings import DEFAULT_CONF, DEFAULT_HEAD_WEIGHT, DEFAULT_MIN_FACE, PipelineSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

NOT_MASKED = ("without_mask", "incorrect_mask", "mask_weared_incorrect")
"""Classes a no-mask rule watches by default: no mask, or one worn wrongly (both spellings in use)."""
MASKED = ("with_mask",)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RulesConfig(_Strict):
    """When an event is raised. Times in seconds, shares in percent."""

    no_mask_seconds: float | None = Field(5.0, ge=0)
    """A person seen in a ``no_mask_classes`` class for this long raises one event (per track); None (or no
    classes): off."""
    no_mask_classes: list[str] = Field(default_factory=lambda: list(NOT_MASKED))
    no_mask_cooldown: float = Field(0.0, ge=0)
    """After a no-mask event, further ones from the same source wait this long (0: every person counts)."""
    compliance_below: float | None = Field(None, ge=0, le=100)
    """Raise an event when the masked share of people over the window falls below this percentage; None: off."""
    compliance_window: float = Field(5.0, gt=0)
    """Window of the compliance rule, in minutes."""
    compliance_min_people: int = Field(3, ge=1)
    """The compliance rule stays quiet until the window holds at least this many people."""
    compliance_cooldown: float = Field(300.0, ge=0)
    """Seconds between two compliance events of one source."""
    masked_classes: list[str] = Field(default_factory=lambda: list(MASKED))


class SourceConfig(_Strict):
    """One camera, stream or file, with its own detector settings and, optionally, its own rules."""

    name: str = Field(min_length=1)
    url: str = Field(min_length=1)
    """A camera index ("0"), an rtsp:// or http(s):// stream, or a video file."""
    model: str | None = None
    detector: str | None = None
    conf: float = Field(DEFAULT_CONF, ge=0, le=1)
    min_face: int = Field(DEFAULT_MIN_FACE, ge=1)
    head_weight: float = Field(DEFAULT_HEAD_WEIGHT, ge=0, le=1)
    fps: float | None = Field(None, gt=0)
    """Count time from frames (frame number / fps) instead of the clock: a recording replayed faster than real
    time keeps its own timeline, and every frame is processed. Unset (live cameras): the newest frame is
    processed and the ones it skipped are counted as dropped."""
    reconnect_delay: float = Field(5.0, ge=0)
    """Seconds before a source that stopped (after its own reconnection attempts) is opened again."""
    reconnects: int | None = Field(None, ge=0)
    """How many times a lost source is reopened; None: for ever (a file source ends instead)."""
    rules: RulesConfig | None = None
    """This source's changes to the file's [rules] (the keys it names)."""

    @field_validator("url", mode="before")
    @classmethod
    def _url_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    def pipeline_settings(self) -> PipelineSettings:
        """This source's detector settings as the one object ``Detector``, batch and the web app take."""
        return PipelineSettings(
            model=self.model,
            detector=self.detector,
            conf=self.conf,
            min_face=self.min_face,
            head_weight=self.head_weight,
        )


class StorageConfig(_Strict):
    folder: Path = Path("maskwatch-events")
    """Holds events.sqlite3, snapshots/ and clips/."""
    keep_days: float | None = Field(30.0, gt=0)
    """Events (and their files) older than this are deleted; None: kept."""
    keep_events: int | None = Field(10000, ge=1)
    """At most this many events are kept (the oldest go first); None: no limit."""
    clip_before: float = Field(0.0, ge=0, le=60)
    clip_after: float = Field(0.0, ge=0, le=60)
    """Seconds of video before/after an event saved as a clip (MP4); both 0: no clips."""
    blur_faces: bool = False
    """Blur every face in snapshots, clips and the dashboard's live view."""


class ReportConfig(_Strict):
    path: Path | None = None
    """CSV file with one row per source and interval; None: no report file (the dashboard still has history)."""
    interval: float = Field(60.0, gt=0)
    """Seconds per report row."""


class WebhookConfig(_Strict):
    url: str = Field(pattern=r"^https?://")
    retries: int = Field(3, ge=0)
    backoff: float = Field(1.0, ge=0)
    """First retry delay in seconds; doubled after each failure (capped at 30 s)."""
    timeout: float = Field(5.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)


class MqttConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    topic: str = "maskwatch/events"
    qos: Literal[0, 1, 2] = 1
    username: str | None = None
    password: str | None = None
    timeout: float = Field(5.0, gt=0)


class CommandConfig(_Strict):
    argv: list[str] = Field(min_length=1)
    """Run with the event as JSON on stdin (and in $MASKWATCH_EVENT); exit status 0 means delivered."""
    timeout: float = Field(10.0, gt=0)


class DeliveryConfig(_Strict):
    queue_size: int = Field(1000, ge=1)
    """Events waiting for delivery; when full, a new event is stored but its delivery counted as dropped (it is
    retried from the store later)."""
    retry_interval: float = Field(30.0, gt=0)
    """Seconds between two looks for stored events not yet delivered."""


class WatchConfig(_Strict):
    sources: list[SourceConfig] = Field(alias="source", min_length=1)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    webhook: WebhookConfig | None = None
    mqtt: MqttConfig | None = None
    command: CommandConfig | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _unique_names(self) -> WatchConfig:
        names = [s.name for s in self.sources]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"source names must be unique; {twice[0]!r} is used twice")
        return self

    def rules_for(self, source: SourceConfig) -> RulesConfig:
        """The file's [rules] with the keys a source's own [source.rules] names replaced."""
        if source.rules is None:
            return self.rules
        return RulesConfig(**{**self.rules.model_dump(), **source.rules.model_dump(exclude_unset=True)})


def load_config(path: str | Path, blur_faces: bool | None = None) -> WatchConfig:
    """Read and check a watch file; relative paths in it are taken from the file's folder."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    config = parse_config(data, where=str(path))
    base = path.resolve().parent
    if not config.storage.folder.is_absolute():
        config.storage.folder = base / config.storage.folder
    if config.report.path is not None and not config.report.path.is_absolute():
        config.report.path = base / config.report.path
    for source in config.sources:
        local = Path(source.url)
        if not source.url.isdigit() and "://" not in source.url and not local.is_absolute():
            source.url = str(base / local)
    if blur_faces:
        config.storage.blur_faces = True
    return config


def parse_config(data: dict, where: str = "config") -> WatchConfig:
    try:
        return WatchConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InputError(f"{where}: {key}: {first['msg']}") from None
