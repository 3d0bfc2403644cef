"""The HTTP client of the remote commands: JSON calls, a Server-Sent Events reader, and
errors as one line of text (:class:`RemoteError`), never a traceback."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from citcon_sim._version import __version__

DEFAULT_URL = "http://127.0.0.1:8080"
URL_ENV = "CITCON_SIM_URL"
ADMIN_TOKEN_ENV = "CITCON_SIM_ADMIN_TOKEN"  # the same variable `serve --admin-token` reads
CALL_TIMEOUT = 30.0  # wall seconds one control call may take (a redelivery waits on a POST)
STREAM_SILENCE = 60.0  # wall seconds without a byte (heartbeats come every 15 s): gone

Query = Mapping[str, str] | Sequence[tuple[str, str]]


class RemoteError(Exception):
    """A failed remote call, said in one line (the commands print it and exit 1)."""


def check_url(url: str) -> str:
    """``url`` without a trailing slash; ValueError unless it is an http(s) base URL."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    return url.rstrip("/")


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``5m``, ``2h``, ``1d`` or a sum such as ``1h30m``;
    ValueError otherwise."""
    cleaned = text.strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([smhd]?)", cleaned)
    if not parts or re.sub(r"(\d+(?:\.\d+)?)\s*([smhd]?)", "", cleaned).strip():
        raise ValueError(f"{text!r} is not a duration (examples: 90s, 5m, 2h, 1d, 1h30m)")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
    if len(parts) > 1 and any(not u for _, u in parts):
        raise ValueError(f"{text!r}: give every part a unit (s, m, h, d)")
    return sum(float(number) * unit[u] for number, u in parts)


class Remote:
    """One simulator, reached at ``url`` (``admin_token`` for a locked ``/_sim/``)::

        async with Remote("http://127.0.0.1:8080") as sim:
            clock = await sim.call("GET", "/_sim/clock")
    """

    def __init__(self, url: str, admin_token: str | None = None,
                 timeout: float = CALL_TIMEOUT) -> None:
        self.url = check_url(url)
        self.admin_token = admin_token or None
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Remote:
        self._session = aiohttp.ClientSession(
            headers={"User-Agent": f"citcon-sim-cli/{__version__}"})
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use `async with Remote(...)`")
        return self._session

    def _headers(self, path: str, token: str | None) -> dict[str, str]:
        if token is not None:  # a merchant call: the merchant's token, not the admin's
            return {"Authorization": f"Bearer {token}"}
        if path.startswith("/_sim") and self.admin_token:
            return {"X-Admin-Token": self.admin_token}
        return {}

    async def call(self, method: str, path: str, *, query: Query | None = None,
                   form: Mapping[str, str] | None = None, json_body: Any = None,
                   token: str | None = None, ok: Sequence[int] = (200,)) -> Any:
        """One call answered with JSON; the decoded answer. The body is ``form`` or
        ``json_body``; a merchant API call passes its merchant ``token``. Anything else
        (no server, an error envelope, not JSON) is a :class:`RemoteError`."""
        try:
            async with self.session.request(
                method, self.url + path, params=query, data=form, json=json_body,
                headers=self._headers(path, token),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as resp:
                text = await resp.text(errors="replace")
                body = _json(text)
                if resp.status not in ok:
                    raise RemoteError(self._refusal(resp.status, body, text, path))
                if body is None:
                    raise RemoteError(f"{self.url}{path} answered HTTP {resp.status} with "
                                      "no JSON: is this a citcon-sim server?")
                return body
        except aiohttp.ClientError as exc:
            raise RemoteError(self._unreachable(exc)) from None
        except TimeoutError:
            raise RemoteError(f"{self.url} did not answer {method} {path} within "
                              f"{self.timeout:g} s") from None

    async def events(self, path: str, query: Query | None = None) -> AsyncGenerator[
            tuple[str, Any], None]:
        """A Server-Sent Events stream's ``(event, data)`` pairs, data decoded from JSON,
        until the server ends it (a :class:`RemoteError` if it breaks or goes silent)."""
        try:
            async with self.session.get(
                self.url + path, params=query, headers={
                    **self._headers(path, None), "Accept": "text/event-stream"},
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout,
                                              sock_read=STREAM_SILENCE),
            ) as resp:
                if resp.status != 200:
                    text = await resp.text(errors="replace")
                    raise RemoteError(self._refusal(resp.status, _json(text), text, path))
                event, data = "message", list[str]()
                async for raw in resp.content:
                    line = raw.decode("utf-8", "replace").rstrip("\r\n")
                    if not line:
                        if data:
                            yield event, _json("\n".join(data))
                        event, data = "message", []
                        continue
                    name, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if name == "event":
                        event = value
                    elif name == "data":
                        data.append(value)
        except aiohttp.ClientPayloadError:
            raise RemoteError(f"the simulator at {self.url} closed the stream") from None
        except aiohttp.ClientError as exc:
            raise RemoteError(self._unreachable(exc)) from None
        except TimeoutError:
            raise RemoteError(f"the simulator at {self.url} went silent for "
                              f"{STREAM_SILENCE:g} s") from None

    def _unreachable(self, exc: aiohttp.ClientError) -> str:
        if isinstance(exc, aiohttp.ClientConnectorError):
            why = ("connection refused" if isinstance(exc.os_error, ConnectionRefusedError)
                   else exc.strerror or type(exc).__name__)
            return (f"no simulator at {self.url} ({why}): start one with `citcon-sim "
                    f"serve`, or point --url / {URL_ENV} at it")
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return f"the simulator at {self.url} closed the connection"
        return f"cannot talk to the simulator at {self.url}: {type(exc).__name__}"

    def _refusal(self, status: int, body: Any, text: str, path: str) -> str:
        message = _message(body)
        if message is None:
            return (f"{self.url}{path} answered HTTP {status}"
                    + (": is this a citcon-sim server?" if body is None else ""))
        if status == 401 and path.startswith("/_sim"):
            return (f"{message} (HTTP 401): pass --admin-token or set {ADMIN_TOKEN_ENV}")
        return f"{message} (HTTP {status})"


def _message(body: Any) -> str | None:
    """An error answer's text, in each API's shape: the Online API's and ``/_sim/``'s
    ``message``, CHOP's ``error``, UPI's ``data.message``."""
    if not isinstance(body, dict):
        return None
    data = body.get("data")
    for found in (body.get("message"), body.get("error"),
                  data.get("message") if isinstance(data, dict) else None):
        if isinstance(found, str):
            return found
    return None


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def segment(value: str) -> str:
    """``value`` as one path segment (an id typed by a person may hold anything)."""
    return quote(value, safe="")
