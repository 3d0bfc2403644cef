"""Simulator settings, from flags, environment variables or code.

Each setting is stated once, as a :class:`Config` field: its default, and in its
:class:`Setting` metadata its help text, its ``citcon-sim serve`` flag and environment
variable, how flag or variable text becomes a value (``parse``) and what values are
allowed (``check``). ``Config(...)`` checks every value and raises :class:`ConfigError`
naming the setting; the command line is generated from the same fields (citcon_sim/cli.py).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from citcon_sim.domain.errors import CitconError
from citcon_sim.domain.merchants import MerchantSettings, MerchantsFileError, parse_merchants
from citcon_sim.domain.money import FxTable
from citcon_sim.domain.netrules import RuleError, parse_allowlist

# The port of `citcon-sim serve` when none is set; test servers take a free one instead.
DEFAULT_PORT = 8080
ENV_PREFIX = "CITCON_SIM_"


class ConfigError(ValueError):
    """A setting with a value that cannot be used; ``setting`` is the field's name."""

    def __init__(self, setting: str, problem: str) -> None:
        self.setting, self.problem = setting, problem
        super().__init__(f"{setting}: {problem}")


class MerchantsFileConfigError(ConfigError, MerchantsFileError):
    """An unreadable merchants file: a MerchantsFileError too, as Simulator raised before."""


Check = Callable[[Any], str | None]  # a value's problem, or None when it is fine


@dataclass(frozen=True, slots=True)
class Setting:
    """What a :class:`Config` field means, where it comes from and what it accepts."""

    help: str
    option: str | None = None  # the `citcon-sim serve` flag; None: set from Python only
    negative: str | None = None  # a boolean's "off" flag (--running-clock)
    env: str | None = None  # default: CITCON_SIM_<the flag>, e.g. CITCON_SIM_IPN_TIMEOUT
    metavar: str | None = None
    parse: Callable[[str], Any] | None = None  # flag or variable text -> value (None: as is)
    check: Check | None = None
    many: bool = False  # a repeatable flag; the variable holds several, space-separated
    serve_default: Any = None  # `citcon-sim serve`'s default where the field's is None
    show: Callable[[Any], str] | None = None  # value -> flag text, where str() would not do
    error: type[ConfigError] = ConfigError  # what an unusable value raises

    @property
    def envvar(self) -> str | None:
        if self.env is not None or self.option is None:
            return self.env
        return ENV_PREFIX + self.option.lstrip("-").upper().replace("-", "_")


def setting(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING,
            repr: bool = True, **meta: Any) -> Any:
    """A :class:`Config` field with its :class:`Setting`."""
    return field(default=default, default_factory=factory, repr=repr,
                 metadata={"setting": Setting(**meta)})


# -- parsing text (flags and environment variables) ------------------------------------


def parse_seconds_list(text: str) -> tuple[float, ...]:
    """``"15,60,300"`` -> ``(15.0, 60.0, 300.0)``."""
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"{text!r}: comma-separated seconds, e.g. 15,60,300") from None


def parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None


def parse_seconds(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None


def format_seconds_list(delays: tuple[float, ...]) -> str:
    return ",".join(f"{d:g}" for d in delays)


def parse_time(text: str) -> datetime:
    """ISO 8601: ``2024-05-01``, ``2024-05-01 09:30:00``, ``2024-05-01T09:30:00+08:00``."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r}: a date and time such as 2024-05-01T09:30:00") from None


def _optional_text(text: str) -> str | None:
    return text or None  # an empty --admin-token leaves /_sim/ open, as an unset one


# -- checking values -------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def _int_at_least(low: int, high: int | None = None) -> Check:
    def check(value: Any) -> str | None:
        if not _is_int(value):
            return f"{value!r} is not a whole number"
        if value < low or (high is not None and value > high):
            upper = f" and at most {high}" if high is not None else ""
            return f"{value} is out of range (at least {low}{upper})"
        return None
    return check


def _seconds_at_least(low: float) -> Check:
    def check(value: Any) -> str | None:
        if not _is_number(value) or value < low:
            return f"{value!r} is not a number of seconds of at least {low:g}"
        return None
    return check


def _port(value: Any) -> str | None:
    return None if value is None else _int_at_least(0, 65535)(value)


def _optional_int(value: Any) -> str | None:
    return None if value is None or _is_int(value) else f"{value!r} is not a whole number"


def _flag(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"{value!r} is not true or false"


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else f"{value!r} is not text"


def _http_url(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        return f"{value!r} is not an http:// or https:// URL"
    return None


def _readable_file(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Path):
        return f"{value!r} is not a file path"
    if value.exists() and not value.is_file():  # a directory; a FIFO would block open()
        return f"cannot read {value}: not a regular file"
    try:
        with open(value, "rb"):
            return None
    except OSError as exc:
        return f"cannot read {value}: {exc.strerror or exc}"


def _state_path(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, Path):
        return f"{value!r} is not a file path"
    if value.is_dir():
        return f"{value} is a directory"
    return None


# Virtual times the simulator can show: every answer formats times, and times computed
# from now (expiry, retries, windows) must stay formattable, so the end keeps a margin
# below datetime's year 9999. Before the epoch some platforms cannot convert at all.
EARLIEST_TIME = datetime(1970, 1, 2, tzinfo=UTC)
LATEST_TIME = datetime(9900, 1, 1, tzinfo=UTC)


def _time(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        return f"{value!r} is not a date and time"
    when = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not EARLIEST_TIME <= when < LATEST_TIME:
        return (f"{value.isoformat()} is outside the supported range "
                f"({EARLIEST_TIME:%Y-%m-%d} to {LATEST_TIME:%Y-%m-%d})")
    return None


def _timezone(value: Any) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        return f"{value!r} is not a known time zone (an IANA name such as Europe/Paris)"
    return None


def _fx(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "a mapping of currency codes to units per USD"
    try:
        FxTable({str(code): rate for code, rate in value.items()})
    except CitconError as exc:
        return str(exc.detail)
    return None


def _scenario_specs(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        return "a list of scenario file paths or shipped scenario names"
    return None


def _backoff(value: Any) -> str | None:
    if not isinstance(value, tuple) or not value:
        return "at least one retry delay in seconds"
    if not all(_is_number(d) and 0 < d < 10**7 for d in value):
        return "each delay is more than 0 seconds (and less than 10^7)"
    return None


def parse_names(text: str) -> list[str]:
    """``"sim.example.com, .qa.example.com"`` -> ``["sim.example.com", ".qa.example.com"]``."""
    return [part.strip() for part in text.replace(",", " ").split() if part.strip()]


def _host_names(value: Any) -> str | None:
    if not isinstance(value, list) or not all(
            isinstance(n, str) and n and n.isascii() and not any(c in n for c in "/@ \t")
            for n in value):
        return "a list of host names (name, name:port, .suffix for subdomains, or *)"
    return None


def _ipn_allow(value: Any) -> str | None:
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        return "a list of allowlist rules (text)"
    try:
        parse_allowlist(value)
    except RuleError as exc:
        return str(exc)
    return None


def _one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f"{value!r} is not one of {', '.join(choices)}"
    return check


def _lower(text: str) -> str:
    return text.strip().lower()


def _token(value: Any) -> str | None:
    return None if value is None or (isinstance(value, str) and value) else (
        "a non-empty token, or None to leave /_sim/ open")


@dataclass(slots=True)
class Config:
    """Everything ``citcon-sim serve`` and ``Simulator`` can be configured with.

    Values are checked when the Config is made (``dataclasses.replace`` too), and again
    by :meth:`validate`: a bad one raises :class:`ConfigError` naming the setting.
    """

    host: str = setting(
        "127.0.0.1", option="--host", metavar="ADDRESS", check=_text,
        help="Address to listen on.")
    # None: DEFAULT_PORT for `citcon-sim serve`, a free port for SimulatorServer and the
    # pytest plugin (parallel test sessions must not clash); a port set here is used.
    port: int | None = setting(
        None, option="--port", metavar="PORT", parse=parse_int, check=_port,
        serve_default=DEFAULT_PORT, help="Port; 0 picks a free one.")
    public_url: str | None = setting(
        None, option="--public-url", metavar="URL", check=_http_url,
        help="Base URL put in returned pay/QR links, e.g. http://192.168.1.5:8080 so a "
        "phone can scan the QR (default: the listening address).")
    merchants_file: Path | None = setting(
        None, option="--merchants", metavar="FILE", parse=Path, check=_readable_file,
        error=MerchantsFileConfigError,
        help="YAML merchants file; switches to strict mode.")
    seed: int | None = setting(
        None, option="--seed", metavar="N", parse=parse_int, check=_optional_int,
        help="Seed for reproducible transaction ids.")
    frozen_clock: bool = setting(
        False, option="--frozen-clock", negative="--running-clock", check=_flag,
        help="Frozen: virtual time moves only via /_sim/clock/advance.")
    start_time: datetime | None = setting(
        None, option="--start-time", metavar="TIME", parse=parse_time, check=_time,
        help="Virtual time at start, e.g. 2024-05-01T09:30:00 (default: now).")
    timezone: str = setting(
        "UTC", option="--timezone", metavar="ZONE", check=_timezone,
        help="Zone for reported times and the open-balance day.")
    access_log: bool = setting(
        False, option="--access-log", negative="--no-access-log", check=_flag,
        help="Log every HTTP request.")
    scenarios: list[str] = setting(
        factory=list, option="--scenario", env="CITCON_SIM_SCENARIOS", many=True,
        metavar="FILE|NAME", check=_scenario_specs,
        help="Scenario file or shipped scenario name; repeatable (in the variable, "
        "several separated by spaces).")
    # Off by default: real shops charge 99.05 (issue 14). An explicit switch, never a
    # price, turns the table on (docs/scenarios.md, "Magic amounts").
    magic_amounts: bool = setting(
        False, option="--magic-amounts", negative="--no-magic-amounts", check=_flag,
        help="Script outcomes by amount: amounts ending 9901-9909 decline, expire, pay "
        "without an IPN... (docs/scenarios.md). Off: every amount is an ordinary one.")
    journal_size: int = setting(
        1000, option="--journal-size", metavar="N", parse=parse_int, check=_int_at_least(0),
        help="Merchant API calls kept for /_sim/requests; 0 turns the journal off.")
    journal_bytes: int = setting(
        64 * 1024 * 1024, option="--journal-bytes", metavar="N", parse=parse_int,
        check=_int_at_least(64 * 1024),
        help="Bytes the journal may hold (requests and answers, estimated); the oldest "
        "calls go first. A call's parameters and answer are cut at 16 KiB each.")
    # Kept out of repr() and logs.
    admin_token: str | None = setting(
        None, repr=False, option="--admin-token", metavar="TOKEN", parse=_optional_text,
        check=_token,
        help="Lock /_sim/ (all but /_sim/health) behind this token, sent as "
        "'Authorization: Bearer TOKEN' or 'X-Admin-Token: TOKEN'; open the dashboard "
        "once with ?admin_token=TOKEN. Prefer the env variable: a flag shows in ps.")
    state_file: Path | None = setting(
        None, option="--state", metavar="FILE", parse=Path, check=_state_path,
        help="Keep the ledger, IPN log and clock in FILE across restarts (created if "
        "missing; a snapshot from GET /_sim/state works as a start).")
    ipn_timeout: float = setting(
        10.0, option="--ipn-timeout", metavar="SECONDS", parse=parse_seconds,
        check=_seconds_at_least(0.05), help="Wall seconds one IPN attempt may take.")
    # Empty: IPNs may go anywhere, as before; syntax in citcon_sim/domain/netrules.py.
    ipn_allow: list[str] = setting(
        factory=list, option="--ipn-allow", many=True, metavar="RULE", check=_ipn_allow,
        help="Allow IPNs only to these destinations; repeatable (in the variable, "
        "several separated by spaces): host, *.domain, *, IP or CIDR network, each "
        "optionally with :PORT ([::1]:8080), or :PORT alone. A create whose ipn_url is "
        "elsewhere gets HTTP 400. Default: anywhere.")
    ipn_backoff: tuple[float, ...] = setting(
        (15, 60, 300, 900, 3600, 3 * 3600, 6 * 3600), option="--ipn-retries",
        metavar="LIST", parse=parse_seconds_list, check=_backoff,
        show=format_seconds_list,
        help="Virtual seconds before each IPN retry, comma-separated; the notification "
        "fails after the last.")
    upi_token_lifetime: int = setting(
        86400, option="--upi-token-lifetime", metavar="SECONDS", parse=parse_int,
        check=_int_at_least(1),
        help="Virtual seconds a UPI access token stays valid (the sandbox's: 24 h).")
    max_body_bytes: int = setting(
        1024 * 1024, option="--max-body-bytes", metavar="N", parse=parse_int,
        check=_int_at_least(1024), help="Largest request body; larger ones get HTTP 413.")
    fx: dict[str, Any] = setting(
        factory=dict, check=_fx, help="Currency -> units per USD, over the built-in rates.")
    # IPN delivery (citcon_sim/delivery/ipn.py): fair per endpoint, nothing dropped.
    ipn_queue_size: int = setting(
        1000, option="--ipn-backlog", metavar="N", parse=parse_int,
        check=_int_at_least(1, 10**7),
        help="IPN sends queued before the backlog is reported as over its limit (logged, "
        "counted in stats as queue_full); they are still sent in turn, never dropped, "
        "and never count as attempts.")
    ipn_workers: int = setting(
        16, option="--ipn-workers", metavar="N", parse=parse_int,
        check=_int_at_least(1, 1000), help="IPN POSTs in flight at once, in all.")
    ipn_per_endpoint: int = setting(
        2, option="--ipn-per-endpoint", metavar="N", parse=parse_int,
        check=_int_at_least(1, 1000),
        help="IPN POSTs in flight at once to one endpoint (scheme, host and port), so a "
        "merchant endpoint that hangs holds at most this many workers.")
    # -- shared deployments (README "Running it for a team") -------------------------------
    allowed_hosts: list[str] = setting(
        factory=list, option="--allowed-hosts", many=True, parse=parse_names,
        metavar="NAME", check=_host_names,
        help="Host names /_sim/ answers to besides loopback names, IP addresses, "
        "single-label names (compose services) and the --public-url host: NAME, "
        "NAME:PORT, .SUFFIX for its subdomains, or * for any; pages there may also call "
        "/_sim/. Repeatable (in the variable, separated by spaces or commas). Guards an "
        "open /_sim/ against DNS rebinding.")
    idle_timeout: float = setting(
        30.0, option="--idle-timeout", metavar="SECONDS", parse=parse_seconds,
        check=_seconds_at_least(0.05),
        help="Wall seconds a connection may take to send a complete request head, after "
        "connecting or between keep-alive requests; then it is closed.")
    body_timeout: float = setting(
        30.0, option="--body-timeout", metavar="SECONDS", parse=parse_seconds,
        check=_seconds_at_least(0.05),
        help="Wall seconds a request body may take to arrive; a slower one gets HTTP 408 "
        "and its connection is closed.")
    max_connections: int = setting(
        512, option="--max-connections", metavar="N", parse=parse_int,
        check=_int_at_least(1),
        help="Open connections at most; past it the longest-idle one is closed to make "
        "room (the new one when none is idle).")
    max_event_streams: int = setting(
        20, option="--max-event-streams", metavar="N", parse=parse_int,
        check=_int_at_least(1),
        help="Dashboard live streams at most; a new one ends the oldest, which then polls.")
    log_repeats: int = setting(
        20, option="--log-repeats", metavar="N", parse=parse_int, check=_int_at_least(0),
        help="Times one kind of log line is written per minute; the rest are counted in "
        "one summary line (0: no limit).")
    # -- the console (citcon_sim/console.py) and the demo history (citcon_sim/demo.py) -----
    # Off for a library user (SimulatorServer, the pytest plugin): a test run's output is
    # not the simulator's to fill unless asked; `citcon-sim serve` turns it on.
    console: bool = setting(
        False, option="--console", negative="--quiet", serve_default=True, check=_flag,
        help="One line per merchant API call and per IPN attempt on standard output "
        "(citcon-sim serve: on; SimulatorServer and the pytest plugin: off unless set).")
    log_format: str = setting(
        "text", option="--log-format", metavar="text|json", parse=_lower,
        check=_one_of("text", "json"),
        help="The console's lines: text for people, or json (one object a line) for "
        "machines.")
    color: str = setting(
        "auto", option="--color", metavar="auto|always|never", parse=_lower,
        check=_one_of("auto", "always", "never"),
        help="Colour the text console: auto (on a terminal, unless NO_COLOR is set; "
        "FORCE_COLOR forces it), always or never.")
    demo: bool = setting(
        False, option="--demo", negative="--no-demo", check=_flag,
        help="Start with a generated, reproducible history (several merchants, days of "
        "payments, refunds, captures, failures, retried IPNs) ending at the start time; "
        "not with --state or --merchants.")
    demo_seed: int | None = setting(
        None, option="--demo-seed", metavar="N", parse=parse_int, check=_optional_int,
        help="Seed of the --demo history (default: --seed, else 1).")

    def __post_init__(self) -> None:
        # Python callers may pass a str path or a list of delays: stored as the types above.
        if isinstance(self.merchants_file, str):
            self.merchants_file = Path(self.merchants_file)
        if isinstance(self.state_file, str):
            self.state_file = Path(self.state_file)
        if isinstance(self.ipn_allow, tuple | str):  # click's tuple; a str is one rule
            self.ipn_allow = [self.ipn_allow] if isinstance(self.ipn_allow, str) \
                else list(self.ipn_allow)
        if isinstance(self.ipn_backoff, list):
            self.ipn_backoff = tuple(self.ipn_backoff)
        self.validate()

    def validate(self) -> None:
        """Raise :class:`ConfigError` for the first setting whose value is unusable."""
        for f in dataclasses.fields(self):
            check = f.metadata["setting"].check
            problem = check(getattr(self, f.name)) if check is not None else None
            if problem is not None:
                raise f.metadata["setting"].error(f.name, problem)
        if self.demo and (self.state_file is not None or self.merchants_file is not None):
            # The demo makes its own merchants and sets the clock back to start its days.
            raise ConfigError("demo", "makes its own merchants and history: it cannot be "
                              "combined with --state or --merchants")

    @property
    def serve_port(self) -> int:
        """The port ``citcon-sim serve`` listens on (and links name before it listens)."""
        return DEFAULT_PORT if self.port is None else self.port


def settings() -> list[tuple[dataclasses.Field[Any], Setting]]:
    """Every Config field with its :class:`Setting`, in declaration order."""
    return [(f, f.metadata["setting"]) for f in dataclasses.fields(Config)]


def load_merchants_file(path: str | Path) -> tuple[dict[str, MerchantSettings], dict[str, Any]]:
    """Read a merchants file; returns the merchants and the optional ``fx:`` table."""
    import yaml  # only with --merchants, not at every start-up

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MerchantsFileError(f"{path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise MerchantsFileError(f"{path}: not valid YAML: {exc}") from None
    merchants = parse_merchants(data, str(path))
    fx = data.get("fx") or {}
    if not isinstance(fx, dict):
        raise MerchantsFileError(f"{path}: 'fx' maps currency codes to units per USD")
    try:
        FxTable({str(code): rate for code, rate in fx.items()})
    except CitconError as exc:
        raise MerchantsFileError(f"{path}: fx: {exc.detail}") from None
    return merchants, fx
