"""The simulated consumer a wallet page shows: a name and masked account details from Faker.

Faker is seeded with the transaction id, so a payment shows the same person on every load
(and screenshots are reproducible), while two payments show two people. Names come from the
vendor's market (``Vendor.market``: Korean names for Kakao Pay, Japanese for PayPay...).
Nothing here is stored: it is a pure function of the transaction id and the vendor.
"""

from __future__ import annotations

import functools
import hashlib
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from faker import Faker

    from citcon_sim.domain.vendors import Vendor

# Markets whose names are written family name first, without Faker's Western titles.
_NATIVE_ORDER = ("zh_", "ko_", "ja_")
MASK = "•"


class Consumer(msgspec.Struct, frozen=True):
    """Who the wallet page says is paying, as a wallet shows it: never a full account."""

    name: str
    login: str  # the masked sign-in id (an e-mail address)
    phone: str  # the masked phone number: the last four digits
    account: str  # a masked account or card number: the last four digits


# Faker is imported and each locale built on the first page that needs it (a few tens of
# milliseconds each), never at start-up; the instances are reseeded for every consumer.
@functools.cache
def _faker(locale: str) -> Faker:
    from faker import Faker

    return Faker(locale)


def seed_of(txn_id: str) -> int:
    """A stable seed for one transaction (``hash()`` changes between processes)."""
    return int.from_bytes(hashlib.sha256(txn_id.encode()).digest()[:8], "big")


def mask_email(email: str) -> str:
    """``gimyeongil@gmail.com`` → ``gi•••@gmail.com``."""
    local, _, domain = email.partition("@")
    return f"{local[:2]}{MASK * 3}@{domain}"


def last_four(digits: str) -> str:
    """Only the last four digits shown, as wallets and banks do: ``•••• 9139``."""
    only = "".join(c for c in digits if c.isdigit())
    return f"{MASK * 4} {only[-4:]}"


def consumer_for(txn_id: str, vendor: Vendor) -> Consumer:
    """The consumer of payment ``txn_id`` in ``vendor``'s market; the same on every call."""
    return _consumer(txn_id, vendor.market)


# A wallet page is reloaded while it waits (and the status poll asks for its state):
# Faker costs a quarter of a page, and its answer never changes for the same payment.
@functools.lru_cache(maxsize=4096)
def _consumer(txn_id: str, market: str) -> Consumer:
    fake = _faker(market)
    fake.seed_instance(seed_of(txn_id))
    if market.startswith(_NATIVE_ORDER):
        name = fake.name()
    else:  # first_name + last_name: Faker's name() adds titles in some locales ("S.T.")
        name = f"{fake.first_name()} {fake.last_name()}"
    login = mask_email(f"{fake.user_name()}@{fake.free_email_domain()}")
    phone = last_four(fake.numerify("##########"))  # every locale has numerify
    account = last_four(str(fake.random_number(digits=12, fix_len=True)))
    return Consumer(name=name, login=login, phone=phone, account=account)
