"""Simulator settings, from flags, environment variables or code."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from citcon_sim.domain.errors import CitconError
from citcon_sim.domain.merchants import MerchantSettings, MerchantsFileError, parse_merchants
from citcon_sim.domain.money import FxTable


@dataclass(slots=True)
class Config:
    """Everything ``citcon-sim serve`` and ``Simulator`` can be configured with."""

    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None  # base for returned URLs; default: the listening address
    merchants_file: Path | None = None  # strict mode when set
    seed: int | None = None  # reproducible transaction ids
    frozen_clock: bool = False  # time moves only by /_sim/clock/advance
    start_time: datetime | None = None  # virtual time at start; default: now
    timezone: str = "UTC"  # zone of reported times and of the open-balance day
    fx: dict[str, Any] = field(default_factory=dict)  # currency -> units per USD
    max_body_bytes: int = 1024 * 1024
    access_log: bool = False
    scenarios: list[str] = field(default_factory=list)  # files or shipped scenario names
    magic_amounts: bool = True  # amounts ending 9901..9909 script outcomes (docs/scenarios.md)
    journal_size: int = 1000  # merchant API calls kept for /_sim/requests; 0 turns it off
    ipn_timeout: float = 10.0  # wall seconds per IPN attempt
    # Virtual seconds before each IPN retry; the notification fails after the last one.
    ipn_backoff: tuple[float, ...] = (15, 60, 300, 900, 3600, 3 * 3600, 6 * 3600)
    ipn_queue_size: int = 1000  # pending IPN sends; overflow is logged and rescheduled
    ipn_workers: int = 4  # concurrent IPN POSTs
    # Locks /_sim/ (citcon_sim/security.py); None: open. Kept out of repr() and logs.
    admin_token: str | None = field(default=None, repr=False)
    # Ledger, IPN log and clock kept across restarts (citcon_sim/state.py); None: memory only.
    state_file: Path | None = None


def load_merchants_file(path: str | Path) -> tuple[dict[str, MerchantSettings], dict[str, Any]]:
    """Read a merchants file; returns the merchants and the optional ``fx:`` table."""
    import yaml  # only with --merchants: PyYAML costs ~8 ms of every start-up

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
