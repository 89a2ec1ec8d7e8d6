"""Structured logging: JSON in production, readable console lines in development, one line per event either way."""

import re
from typing import Any

import structlog

# CR, LF and the other C0/C1 controls: a user-supplied value containing them must never start a new log line.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_MULTILINE_KEYS = frozenset({"exception", "stack"})


def _escape(value: Any) -> Any:
    if isinstance(value, str):
        return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), value)
    if isinstance(value, dict):
        return {k: _escape(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escape(v) for v in value]
    return value


def escape_control_characters(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Escape control characters in every value so that user text cannot forge a log line."""
    # Tracebacks are ours, not user text, and stay readable on several lines.
    return {key: value if key in _MULTILINE_KEYS else _escape(value) for key, value in event_dict.items()}


SHARED_PROCESSORS: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def logging_configure(*, log_format: str, level: str) -> dict[str, Any]:
    """Configure structlog and return the LOGGING dict for Django; log_format is 'json' or 'console'."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[
            # First: an event below the level (a request's start and finish, in production) costs nothing more.
            structlog.stdlib.filter_by_level,
            *SHARED_PROCESSORS,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": structlog.stdlib.ProcessorFormatter,
                "foreign_pre_chain": SHARED_PROCESSORS,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info,
                    escape_control_characters,
                    renderer,
                ],
            }
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django_structlog": {"level": level},
            "django.db.backends": {"level": "WARNING"},
            "celery": {"level": level},
            # One INFO line per request would be thousands a minute from health probes and analysis traffic.
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }
