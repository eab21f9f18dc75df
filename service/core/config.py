"""Settings: one object, read from ``SALIENCE_*`` environment variables.

    SALIENCE_PORT=9000 SALIENCE_MAX_BODY_BYTES=262144 salience serve

List settings take a comma-separated string (``SALIENCE_TRUSTED_ROLES=system,developer``) or a
JSON array.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from salience.markup.parsing import DEFAULT_MAX_ELEMENTS


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
