"""Check a Citcon IPN (Online API, CHOP): CITCON_TOKEN=... python3 verify_ipn.py < body"""
import hashlib
import hmac
import os
import sys
from urllib.parse import parse_qsl


def citcon_ipn_valid(body: str, token: str) -> bool:
    """``body``: the raw form posted to your ipn_url; ``token``: your merchant token."""
    form = dict(parse_qsl(body, keep_blank_values=True))  # a framework's request.form
    if "fields" not in form or "sign" not in form:
        return False
    keys = sorted({k for k in form["fields"].split(",") if k} | {"fields"})
    if any(k not in form for k in keys):
        return False
    text = "&".join(f"{k}={form[k]}" for k in keys) + "&token=" + token
    expected = hashlib.md5(text.encode("utf-8")).hexdigest()
    return hmac.compare_digest(expected, form["sign"].lower())


if __name__ == "__main__":
    ok = citcon_ipn_valid(sys.stdin.read(), os.environ.get("CITCON_TOKEN", ""))
    print("valid" if ok else "invalid")
    sys.exit(0 if ok else 1)
