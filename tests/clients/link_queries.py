"""What the Python clients share: the documented link queries, and how a
value of any driver's row is written out as JSON for the Rust test to compare."""

import json
import os

QUERIES = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "link_queries.json")))


def value(v):
    if isinstance(v, (bytes, bytearray)):
        return "0x" + v.hex().upper()
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)  # uuid.UUID, decimal.Decimal
