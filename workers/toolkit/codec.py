"""Decoding helpers every JSON worker shares, each failure a DLQ reason code; the result encoder."""

from __future__ import annotations

from typing import Any

import orjson

from workers.engine.handler import InvalidMessage
from workers.transport.records import Record

MAX_MESSAGE_BYTES = 1 << 20


def encode_json(result: dict[str, Any]) -> bytes:
    """A result as compact JSON bytes. orjson: ~16x faster than ``json.dumps`` on a top-20 prediction
    (2 vs 29 us): result encoding is a per-message cost on every worker's hot path."""
    return orjson.dumps(result)


def decode_json_object(record: Record, max_bytes: int = MAX_MESSAGE_BYTES) -> dict[str, Any]:
    """Bytes -> JSON object. Codes: ``too_large``, ``invalid_utf8``, ``invalid_json``, ``wrong_type``."""
    raw = record.value or b""
    if len(raw) > max_bytes:
        raise InvalidMessage("too_large", f"{len(raw)} bytes > limit {max_bytes}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage("invalid_utf8", str(exc)) from None
    try:
        payload = orjson.loads(text)  # ~5x faster than json.loads here; rejects NaN/Infinity, as JSON does
    except orjson.JSONDecodeError as exc:
        raise InvalidMessage("invalid_json", str(exc)) from None
    if not isinstance(payload, dict):
        raise InvalidMessage("wrong_type", f"expected a JSON object, got {type(payload).__name__}")
    return payload


def check_schema_version(payload: dict[str, Any], supported: int = 1) -> None:
    """An optional ``schema_version`` must be one this worker understands (``unsupported_schema``)."""
    version = payload.get("schema_version", supported)
    if version != supported or isinstance(version, bool):
        raise InvalidMessage("unsupported_schema", f"schema_version {version!r}; this worker reads {supported}")


def require_string(payload: dict[str, Any], name: str, max_chars: int = 256) -> str:
    if name not in payload:
        raise InvalidMessage("missing_field", f"{name!r} is required")
    value = payload[name]
    if not isinstance(value, str):
        raise InvalidMessage("wrong_type", f"{name!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise InvalidMessage("empty_field", f"{name!r} is empty")
    if len(value) > max_chars:
        raise InvalidMessage("field_too_long", f"{name!r} has {len(value)} characters > {max_chars}")
    return value


def require_id(payload: dict[str, Any], name: str) -> str | int:
    if name not in payload:
        raise InvalidMessage("missing_field", f"{name!r} is required")
    value = payload[name]
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise InvalidMessage("wrong_type", f"{name!r} must be a string or an integer")
    if isinstance(value, str) and not (0 < len(value) <= 256):
        raise InvalidMessage("wrong_type", f"{name!r} must be 1-256 characters")
    return value


def require_timestamp(payload: dict[str, Any], name: str = "ts") -> float:
    """Epoch seconds (or milliseconds, when the number is that large)."""
    if name not in payload:
        raise InvalidMessage("missing_field", f"{name!r} is required")
    value = payload[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidMessage("wrong_type", f"{name!r} must be epoch seconds or milliseconds (a number)")
    if not (0 <= value < 1e14):
        raise InvalidMessage("out_of_range", f"{name!r} = {value} is not a plausible epoch time")
    return float(value) / 1000 if value > 1e11 else float(value)
