"""Check a Citcon UPI v1 IPN: CITCON_PRIVATE_KEY=... python3 verify_upi_ipn.py < body"""
import hashlib
import hmac
import json
import os
import sys


def citcon_upi_ipn_valid(body: bytes, private_key: str) -> bool:
    """``body``: the raw JSON posted to urls.ipn; ``private_key``: your UPI key."""
    try:
        data = json.loads(body)
    except ValueError:
        return False
    if not isinstance(data, dict) or not isinstance(data.get("fields"), str) \
            or not isinstance(data.get("sign"), str):
        return False
    keys = sorted({k for k in data["fields"].split(",") if k} | {"fields"})
    if any(k not in data for k in keys):
        return False
    # A number as its digits, null as nothing (as PHP interpolates them).
    text = "&".join(f"{k}={'' if data[k] is None else data[k]}" for k in keys)
    expected = hashlib.sha256(f"{text}&secret={private_key}".encode()).hexdigest()
    return hmac.compare_digest(expected, data["sign"].lower())


if __name__ == "__main__":
    ok = citcon_upi_ipn_valid(sys.stdin.buffer.read(), os.environ.get("CITCON_PRIVATE_KEY", ""))
    print("valid" if ok else "invalid")
    sys.exit(0 if ok else 1)
