"""Settings: the ones chosen when the service was created (app/service.json), and the environment at start."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

_CHOSEN = json.loads(Path(__file__).with_name("service.json").read_text(encoding="utf-8"))
SERVICE_NAME: str = _CHOSEN["name"]
GREETING: str = _CHOSEN["greeting"]


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    version: str = "dev"
    log_level: str = "INFO"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls(
            host=env.get("HOST", cls.host),
            port=int(env.get("PORT", cls.port)),
            version=env.get("VERSION") or cls.version,
            log_level=env.get("LOG_LEVEL", cls.log_level).upper(),
        )
