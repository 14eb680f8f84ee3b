"""JSON text as the head node writes it, to its store and to the wire: pydantic-core's encoder (in Rust,
about three times faster than the standard library's: a bulk cancel writes thousands of rows and a
listing sends thousands of records), compact and UTF-8. What it cannot encode as UTF-8 (a lone
surrogate) goes through the standard library's encoder, which escapes it: the same JSON value."""

from __future__ import annotations

import json
from typing import Any

import pydantic_core

from ..errors import HpcError
from ..wire import protocol

_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def dumps(value: Any) -> bytes:
    """`value` (dicts, lists, str, int, float, bool, None) as compact UTF-8 JSON."""
    try:
        return pydantic_core.to_json(value)
    except pydantic_core.PydanticSerializationError:
        return _ENCODER.encode(value).encode()


def reply(message: dict[str, Any], limit: int = protocol.MAX_FRAME) -> bytes:
    """`message` (a reply: {"ok", "result" | "error"}) as dumps writes it, its "result" list an item at a
    time: ProtocolError as soon as the text passes `limit` bytes, before the rest is written (protocol.frame
    checks any other reply once written). Written whole, a listing of one 200 KB job asked for 10,000 times
    took 4 GB and 45 s of the head node, everyone waiting, before its size was found too large. An item at
    a time costs no more: 1.1 ms for 5,000 small records, 1.2 ms whole."""
    result = message.get("result")
    if not isinstance(result, list):
        return dumps(message)
    items, size = [], 0
    for item in result:
        items.append(dumps(item))
        size += len(items[-1]) + 1
        if size > limit:
            raise HpcError("ProtocolError", f"a reply of more than {limit} bytes exceeds the limit of a message: "
                           "ask for fewer at a time")
    rest = dumps({key: value for key, value in message.items() if key != "result"})
    return rest[:-1] + (b"," if len(rest) > 2 else b"") + b'"result":[' + b",".join(items) + b"]}"


def text(value: Any) -> str:
    """The same, as text (SQLite's TEXT columns)."""
    return dumps(value).decode()
