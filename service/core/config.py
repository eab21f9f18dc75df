"""Settings: one object, read from ``SALIENCE_*`` environment variables and a config file.

    SALIENCE_PORT=9000 SALIENCE_MAX_BODY_BYTES=262144 salience serve

List settings take a comma-separated string (``SALIENCE_TRUSTED_ROLES=system,developer``) or a
JSON array.

Where each setting comes from, first found wins: a command-line flag (``salience serve
--port``), then the ``SALIENCE_*`` environment variable, then the config file, then the default.
The config file is ``$SALIENCE_CONFIG`` if set (it must exist), else ``salience.toml`` in the
current folder, else the ``[tool.salience]`` table of ``pyproject.toml`` there; its keys are the
settings' names in lower case (``port = 9000``, ``trusted_roles = ["system"]``), and a key that
names no setting is an error, not a silent no-op. ``salience config`` prints every setting with
its value and where it came from.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from salience.markup.parsing import DEFAULT_MAX_ELEMENTS

CONFIG_VARIABLE = "SALIENCE_CONFIG"
SECRET = frozenset({"upstream_api_key"})


class ConfigError(ValueError):
    """A config file that cannot be read, or that names a setting there is not."""


def config_file(folder: Path | None = None) -> tuple[Path, str] | None:
    """(path, its table: "" or "tool.salience") of the config file in force, or None."""
    explicit = os.environ.get(CONFIG_VARIABLE)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"${CONFIG_VARIABLE}={explicit}: no such file")
        return path, "tool.salience" if path.name == "pyproject.toml" else ""
    here = folder or Path.cwd()
    if (here / "salience.toml").is_file():
        return here / "salience.toml", ""
    pyproject = here / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return None  # a pyproject.toml that is not ours to judge
        if isinstance(data.get("tool"), dict) and "salience" in data["tool"]:
            return pyproject, "tool.salience"
    return None


def file_values(found: tuple[Path, str] | None = None) -> dict[str, Any]:
    """The settings the config file gives (none without one); ConfigError if it is broken."""
    found = found if found is not None else config_file()
    if found is None:
        return {}
    path, table = found
    try:
        data: Any = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read it ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not TOML ({error})") from None
    for part in table.split(".") if table else []:
        data = data.get(part, {}) if isinstance(data, dict) else {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: [{table}] is not a table")
    known = set(Settings.model_fields)
    unknown = sorted(set(data) - known)
    if unknown:
        where = f"{path} [{table}]" if table else str(path)
        raise ConfigError(
            f"{where}: no setting named {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    return dict(data)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SALIENCE_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64, description="server processes (salience serve)")

    # Limits: every request is bounded in bytes, tokens, items and time.
    max_body_bytes: int = Field(
        1_048_576, ge=1, description="request body limit, counted as received"
    )
    max_prompt_tokens: int = Field(32_768, ge=1, description="tokens per prompt (all messages)")
    max_messages: int = Field(256, ge=1)
    max_markup_elements: int = Field(
        DEFAULT_MAX_ELEMENTS,
        ge=0,
        description="importance elements per prompt (tags, rich-text HTML, emphasis, callouts)",
    )
    max_batch_size: int = Field(64, ge=1)
    max_batch_tokens: int = Field(
        131_072,
        ge=1,
        description="tokens in one /annotate/batch answer, all results together (its size in "
        "bytes follows from it: about 30 bytes a token with ids, levels and offsets)",
    )
    body_timeout_s: float = Field(30.0, gt=0, description="time allowed to receive a body")
    header_timeout_s: float = Field(
        10.0, gt=0, le=3600, description="time allowed to receive a request's headers"
    )
    parse_threads: int = Field(
        1,
        ge=1,
        le=64,
        description="threads that parse, read documents and tokenize off the event loop "
        "(more than one lets two parses starve the loop of the GIL: service.core.offload)",
    )

    style_levels: str | None = Field(
        None,
        description="JSON: rich-text style signals → levels, e.g. "
        '{"color": null, "combined": "high"} (default: each signal high, two or more hard)',
    )
    default_encoding: str = "cl100k_base"
    trusted_roles: Annotated[tuple[str, ...], NoDecode] = ("system", "developer")

    # Where later parts plug in: the local model (a GGUF file or a Hugging Face folder) and the
    # OpenAI-compatible upstream of the proxy.
    model_path: str | None = None
    preload_model: bool = Field(
        True, description="load the local model at start-up; /readyz waits for it"
    )
    # Evaluation jobs: SQLite file (jobs and sample records), worker on/off, limits.
    eval_db: str = "evals.sqlite3"
    eval_worker: bool = True
    max_eval_jobs: int = Field(16, ge=1, description="queued or running eval jobs")
    max_eval_samples: int = Field(
        5000,
        ge=1,
        description="answers in one eval job's grid: its samples × (1 + sampled answers each)",
    )

    # The proxy (/v1): the OpenAI-compatible upstream (base URL with /v1, as for openai's
    # base_url), its limits, the text method applied on the way, and the local model's name.
    upstream_url: str | None = None
    upstream_api_key: str | None = Field(None, description="replaces the client's Authorization")
    upstream_timeout_s: float = Field(120.0, gt=0, description="per read/write, streams included")
    upstream_connect_timeout_s: float = Field(5.0, gt=0)
    upstream_max_connections: int = Field(100, ge=1, description="connections to the upstream")
    proxy_method: str = Field("xml", description="text method for upstream requests, or off")
    proxy_strict: bool = Field(False, description="malformed markup → 422 instead of fail-open")
    proxy_detect_rules: bool = Field(
        False, description="mark rule sentences of trusted messages as hard (rule detector)"
    )
    bias_files: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="the bias files clients may choose, by name (learned@NAME, pasta@NAME, "
        'distance@NAME): a JSON object {"NAME": "/path/file.json"} or NAME=PATH,NAME=PATH; '
        "a client never names a path",
    )
    local_model: str = Field("salience-local", description="model name served in process")
    local_method: str = Field("learned", description="steering method of the local model")
    local_max_tokens: int = Field(512, ge=1, description="new tokens per local generation")
    local_max_waiting: int = Field(8, ge=1, description="local generations waiting their turn")

    log_level: str = "info"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (the constructor's arguments), then SALIENCE_* variables, then the file."""
        return init_settings, env_settings, InitSettingsSource(settings_cls, file_values())

    @field_validator("style_levels")
    @classmethod
    def _style_levels(cls, value: str | None) -> str | None:
        from salience.markup import StyleLevels

        StyleLevels.parse(value)  # refuse a bad map at start-up, with the reason
        return value

    @field_validator("bias_files", mode="before")
    @classmethod
    def _bias_files(cls, value: Any) -> Any:
        """The operator's catalogue, refused at start-up unless every name is well formed and
        every file exists and reads as JSON (whether it fits the model is checked at use)."""
        import json

        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                value = json.loads(text)
            else:
                pairs = [p.partition("=") for p in text.split(",") if p.strip()]
                if any(not eq for _, eq, _ in pairs):
                    raise ValueError("write NAME=PATH,NAME=PATH or a JSON object")
                value = {k.strip(): v.strip() for k, _, v in pairs}
        if not isinstance(value, dict):
            raise ValueError("a JSON object of name → path")
        from salience.model.methods import CATALOGUE_NAME

        for name, path in value.items():
            if not isinstance(name, str) or not CATALOGUE_NAME.fullmatch(name):
                raise ValueError(f"{name!r}: a name is 1-64 of a-z 0-9 _ . - (lower case)")
            try:
                with open(path, encoding="utf-8") as file:
                    json.load(file)
            except (OSError, ValueError, TypeError) as error:
                raise ValueError(f"{name}: {path} is not a readable JSON file ({error})") from None
        return value

    @field_validator("trusted_roles", mode="before")
    @classmethod
    def _split_roles(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return tuple(json.loads(text))
            return tuple(r.strip() for r in text.split(",") if r.strip())
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def provenance(flags: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every setting: its name, its effective value (secrets shown as "***") and where it came
    from ("flag", "env SALIENCE_X", the config file, or "default")."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    settings = Settings(**flags)
    found = config_file()
    in_file = file_values(found)
    out = []
    for name in Settings.model_fields:
        variable = f"SALIENCE_{name.upper()}"
        if name in flags:
            source = "flag"
        elif variable in os.environ:
            source = f"env {variable}"
        elif name in in_file and found is not None:
            source = f"{found[0]}" + (f" [{found[1]}]" if found[1] else "")
        else:
            source = "default"
        value = getattr(settings, name)
        if isinstance(value, tuple):
            value = list(value)
        if name in SECRET and value is not None:
            value = "***"
        out.append({"name": name, "value": value, "source": source, "variable": variable})
    return out
