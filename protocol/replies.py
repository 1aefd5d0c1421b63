"""Replies and pushed events as JSON lines: encode on the server, decode in clients.

A reply is `{"txn":..,"cmd":..,"ok":true,"result":{..}}` or
`{"txn":..,"cmd":..,"ok":false,"error":{"code":..,"message":..}}`, with `"replayed":true` added when
a retried txn returns its stored reply. A pushed event carries `"event"` instead of `"ok"`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson

from protocol.commands import SESSION_COMMANDS, TRADING_COMMANDS
from protocol.errors import ErrorCode, ProtocolError

_fallback = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode


def _encode(obj: Any) -> str:
    """Compact, ASCII-only JSON. orjson is an order of magnitude faster than json on the reply
    path; the rare reply with non-ASCII text (a quoted bad field) goes through json's escaping."""
    try:
        data = orjson.dumps(obj)
    except orjson.JSONEncodeError:
        return _fallback(obj)  # lone surrogates or giant ints: json escapes what orjson refuses
    return data.decode() if data.isascii() else _fallback(obj)


def _code_text(code: Any) -> str:
    # An ErrorCode is a str: its text is its value, without ErrorCode.__str__'s Python call.
    return str.__str__(code) if isinstance(code, str) else str(code)


#: Pushed event names.
TRIGGER_FIRED = "trigger_fired"
PENDING_EXPIRED = "pending_expired"


@dataclass(frozen=True, init=False)
class Reply:
    """The answer to one request. Its JSON form is computed once and cached."""

    txn: int | None
    cmd: str | None
    ok: bool
    result: dict[str, Any] | None = None
    code: ErrorCode | None = None
    message: str | None = None
    replayed: bool = False

    def __init__(self, txn: int | None, cmd: str | None, ok: bool,
                 result: dict[str, Any] | None = None, code: ErrorCode | None = None,
                 message: str | None = None, replayed: bool = False) -> None:
        # One reply per command: filling __dict__ takes 4,200 instructions where the frozen
        # dataclass __init__ (one object.__setattr__ call per field) takes 11,600, 10 % of
        # `daytrade replay` on final_2019's first 60k lines (callgrind, PYTHONHASHSEED=0).
        d = self.__dict__
        d["txn"] = txn
        d["cmd"] = cmd
        d["ok"] = ok
        d["result"] = result
        d["code"] = code
        d["message"] = message
        d["replayed"] = replayed

    def to_json(self) -> str:
        """The reply as one JSON line without its newline."""
        d = self.__dict__
        cached = d.get("_json")
        if cached is not None:
            return cached
        txn = d["txn"]
        cmd = d["cmd"]
        if type(txn) is int and 0 <= txn < _TXN_LIMIT and type(cmd) is str and (
                cmd in _PLAIN_NAMES):
            # The envelope written directly, only the result (or message) left to the encoder:
            # the same text as encoding the whole object, when that part is plain ASCII JSON.
            tail = ',"replayed":true}' if d["replayed"] else "}"
            try:
                if d["ok"]:
                    result = d["result"]
                    body = orjson.dumps(result if result is not None else {})
                    if body.isascii():
                        text = (f'{{"txn":{txn},"cmd":"{cmd}","ok":true,"result":'
                                f'{body.decode()}{tail}')
                        d["_json"] = text
                        return text
                else:
                    code = d["code"]
                    message = orjson.dumps(d["message"] or "")
                    if type(code) is ErrorCode and message.isascii():
                        text = (f'{{"txn":{txn},"cmd":"{cmd}","ok":false,"error":{{"code":'
                                f'"{code._value_}","message":{message.decode()}}}{tail}')
                        d["_json"] = text
                        return text
            except orjson.JSONEncodeError:
                pass  # the general path below falls back to json
        text = _general_json(self)
        self.__dict__["_json"] = text  # frozen dataclass: bypass __setattr__ for the cache only
        return text

    def as_replayed(self) -> Reply:
        return Reply(self.txn, self.cmd, self.ok, self.result, self.code, self.message, True)


def _general_json(reply: Reply) -> str:
    """The reply encoded as one object (the fast path of `Reply.to_json` writes the same text)."""
    if reply.ok:
        obj: dict[str, Any] = {"txn": reply.txn, "cmd": reply.cmd, "ok": True,
                               "result": reply.result if reply.result is not None else {}}
    else:
        obj = {"txn": reply.txn, "cmd": reply.cmd, "ok": False,
               "error": {"code": _code_text(reply.code), "message": reply.message or ""}}
    if reply.replayed:
        obj["replayed"] = True
    return _encode(obj)


#: Command names need no JSON escaping, and txns below 2**63 print alike in json and orjson, so
#: Reply.to_json may write the envelope of such replies itself.
_PLAIN_NAMES = frozenset(c.NAME for c in (*TRADING_COMMANDS, *SESSION_COMMANDS))
_TXN_LIMIT = 2**63


def ok(txn: int | None, cmd: str, result: dict[str, Any]) -> Reply:
    return Reply(txn, cmd, True, result)


def error(txn: int | None, cmd: str | None, code: ErrorCode, message: str) -> Reply:
    return Reply(txn, cmd, False, None, code, message)


def error_from(exc: ProtocolError) -> Reply:
    """The reply to a line that failed to parse."""
    return Reply(exc.txn, exc.command, False, None, exc.code, exc.message)


@dataclass(frozen=True, slots=True)
class PushedEvent:
    """An unsolicited server event such as `trigger_fired` or `pending_expired`."""

    event: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return _encode({"event": self.event, **self.data})


class DecodeError(ValueError):
    """A server line that is not a well-formed reply or event."""


#: Error codes by their text: a dict lookup, where calling the Enum class goes through its
#: metaclass (clients decode an error reply for nearly half the commands of a workload).
_ERROR_CODES: dict[str, ErrorCode] = {code.value: code for code in ErrorCode}


def decode(line: str | bytes) -> Reply | PushedEvent:
    """Decode one server line (clients use this)."""
    try:
        obj = orjson.loads(line)
    except ValueError as exc:
        raise DecodeError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise DecodeError("not a JSON object")
    if "event" in obj:
        name = obj.pop("event")
        if not isinstance(name, str):
            raise DecodeError("event name is not a string")
        return PushedEvent(name, obj)
    if "ok" not in obj:
        raise DecodeError("neither a reply nor an event")
    txn = obj.get("txn")
    cmd = obj.get("cmd")
    replayed = bool(obj.get("replayed", False))
    if obj["ok"] is True:
        result = obj.get("result")
        if not isinstance(result, dict):
            raise DecodeError("ok reply without a result object")
        return Reply(txn, cmd, True, result, replayed=replayed)
    err = obj.get("error")
    if not isinstance(err, dict) or "code" not in err:
        raise DecodeError("error reply without an error object")
    code = _ERROR_CODES.get(err["code"]) if isinstance(err["code"], str) else None
    if code is None:
        raise DecodeError(f"unknown error code {err['code']!r}")
    return Reply(txn, cmd, False, None, code, str(err.get("message", "")), replayed)
