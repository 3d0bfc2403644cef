"""Where IPNs may go: the ``--ipn-allow`` allowlist.

A merchant's ``ipn_url`` makes the simulator POST to any address and keep the start of
the reply, so on a shared server it could probe internal services. The operator can
name the destinations allowed; every other ``ipn_url`` is refused when the payment is
created. With no rule everything is allowed (a laptop, a test run).

Rule syntax (one per ``--ipn-allow``):

- ``billing.test``: that host name (any letter case; a trailing dot is ignored);
- ``*.example.com``: any name below example.com (not example.com itself);
- ``10.0.0.5``, ``::1``, ``10.0.0.0/8``, ``fd00::/8``: an address or a network, for
  URLs that name an address;
- ``*``: any host;
- any of these followed by ``:PORT`` (``billing.test:8443``, ``[::1]:9000``,
  ``10.0.0.0/8:80``); without one, any port;
- ``:PORT``: any host on that port.

Names are compared as written in the URL. When the notification is sent, its host's
resolved addresses can be checked too (:meth:`Allowlist.resolved_problem`): a name
allowed only by a wildcard (``*``, ``*.example.com``) may not resolve to a loopback,
link-local, private or unspecified address unless an address rule allows it.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from urllib.parse import urlsplit

import msgspec

from citcon_sim.domain.errors import BadRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_DEFAULT_PORTS = {"http": 80, "https": 443}


class RuleError(ValueError):
    """An allowlist rule that cannot be read; the message shows the syntax."""


class AllowRule(msgspec.Struct, frozen=True):
    text: str  # as the operator wrote it, for messages
    name: str | None = None  # an exact host name, lower case
    suffix: str | None = None  # "*.example.com" -> ".example.com"; "" for "*"
    network: Network | None = None
    port: int | None = None  # None: any port

    @property
    def wildcard(self) -> bool:
        return self.suffix is not None

    def allows(self, host: str, address: Address | None, port: int) -> bool:
        if self.port is not None and port != self.port:
            return False
        if self.suffix is not None:
            return self.suffix == "" or host.endswith(self.suffix)
        if self.name is not None:
            return address is None and host == self.name
        if self.network is not None:
            return address is not None and address in self.network
        return True  # ":PORT"


_SYNTAX = ("host, *.domain, *, an IP address or CIDR network, each optionally "
           "followed by :PORT (IPv6 in brackets: [::1]:8080), or :PORT alone")


def _port(text: str, rule: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 65535:
        raise RuleError(f"{rule!r}: the port must be a number from 1 to 65535")
    return int(text)


def parse_rule(text: str) -> AllowRule:
    """One rule; :class:`RuleError` names it and shows the syntax when unreadable."""
    raw = text.strip()
    if not raw:
        raise RuleError(f"an empty rule (expected {_SYNTAX})")
    host, port = raw, None
    if raw.startswith("["):  # [v6] or [v6]:port
        end = raw.find("]")
        if end < 0:
            raise RuleError(f"{raw!r}: a '[' without ']'")
        host, rest = raw[1:end], raw[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise RuleError(f"{raw!r}: expected :PORT after ']'")
            port = _port(rest[1:], raw)
    elif raw.count(":") == 1:  # host:port, network:port or :port (bare IPv6 has several)
        host, _, port_text = raw.partition(":")
        port = _port(port_text, raw)
    if not host:
        if port is None:
            raise RuleError(f"{raw!r}: expected {_SYNTAX}")
        return AllowRule(raw, port=port)
    if "/" in host or _is_address(host):
        try:
            network = ipaddress.ip_network(host, strict=False)
        except ValueError as exc:
            raise RuleError(f"{raw!r}: not an address or network ({exc})") from None
        return AllowRule(raw, network=network, port=port)
    name = host.lower()
    if name == "*":
        return AllowRule(raw, suffix="", port=port)
    if name.startswith("*."):
        label = name[2:].rstrip(".")
        if not _is_name(label):
            raise RuleError(f"{raw!r}: expected *.domain, e.g. *.example.com")
        return AllowRule(raw, suffix="." + label, port=port)
    name = name.rstrip(".")
    if not _is_name(name):
        raise RuleError(f"{raw!r}: expected {_SYNTAX}")
    return AllowRule(raw, name=name, port=port)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_name(text: str) -> bool:
    labels = text.split(".")
    return bool(text) and len(text) <= 253 and all(
        label and len(label) <= 63 and all(ch.isalnum() or ch in "-_" for ch in label)
        for label in labels)


def _internal(address: Address) -> bool:
    return (address.is_loopback or address.is_link_local or address.is_private
            or address.is_unspecified or address.is_reserved or address.is_multicast)


class Target(msgspec.Struct, frozen=True):
    """The host and port an http(s) URL names, as compared with the rules."""

    host: str  # lower case, no brackets, no trailing dot
    address: Address | None  # when the host is an IP address
    port: int


def target(url: str) -> Target:
    """The host and port of ``url``; ValueError when it names none."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise ValueError("no host")
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower(), 80)
    try:
        address: Address | None = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        address = None
    return Target(host, address, port)


class Allowlist:
    """Parsed ``--ipn-allow`` rules; no rule allows every destination."""

    def __init__(self, rules: tuple[AllowRule, ...] = ()) -> None:
        self.rules = rules

    @property
    def open(self) -> bool:
        return not self.rules

    def matching(self, t: Target) -> AllowRule | None:
        return next((r for r in self.rules if r.allows(t.host, t.address, t.port)), None)

    def url_problem(self, url: str) -> str | None:
        """Why ``url`` may not receive IPNs, or None when it may (checked at create)."""
        if self.open:
            return None
        try:
            t = target(url)
        except ValueError:
            return "it names no host and port"
        if self.matching(t) is None:
            shown = f"[{t.host}]" if ":" in t.host else t.host
            return (f"{shown}:{t.port} is not an allowed IPN destination on this simulator "
                    f"(allowed: {', '.join(r.text for r in self.rules)})")
        return None

    def check_url(self, url: str | None, key: str = "ipn_url") -> None:
        """Raise BadRequest (4100, or the face's equivalent) for a refused ``url``."""
        if url is None:
            return
        problem = self.url_problem(url)
        if problem is not None:
            raise BadRequest(f"{key}: {problem}")

    def resolved_problem(self, url: str, addresses: list[str]) -> str | None:
        """For the sender, once ``url``'s host is resolved: why it must not be posted
        to, or None. A name allowed by an exact rule is trusted wherever it resolves;
        one allowed only by a wildcard may not reach an internal address (loopback,
        link-local, private, unspecified) that no address rule allows."""
        problem = self.url_problem(url)
        if problem is not None or self.open:
            return problem
        t = target(url)
        rule = self.matching(t)
        if t.address is not None or rule is None or not rule.wildcard:
            return None
        for text in addresses:
            try:
                address = ipaddress.ip_address(text.partition("%")[0])
            except ValueError:
                return f"{t.host} resolved to {text!r}, not an address"
            if _internal(address) and not any(
                    r.network is not None and r.allows(t.host, address, t.port)
                    for r in self.rules):
                return (f"{t.host} resolves to the internal address {address}, which no "
                        "--ipn-allow address rule allows")
        return None


def parse_allowlist(rules: tuple[str, ...] | list[str]) -> Allowlist:
    """Every rule parsed (RuleError for the first unreadable one)."""
    return Allowlist(tuple(parse_rule(text) for text in rules))


@lru_cache(maxsize=8)
def _cached(rules: tuple[str, ...]) -> Allowlist:
    return parse_allowlist(rules)


def allowlist(rules: list[str] | tuple[str, ...]) -> Allowlist:
    """The parsed allowlist of a Config's ``ipn_allow`` (parsed once per distinct value;
    no rule, the usual case, costs nothing)."""
    return _OPEN if not rules else _cached(tuple(rules))


_OPEN = Allowlist()
