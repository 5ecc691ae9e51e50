"""Microsoft's documented link queries, unchanged, through python-tds (a TDS
client nobody here wrote), over TLS, against both lab sides.

Reads the `milink lab up --json` line on stdin; prints one JSON object with
each query's column names, DB-API type codes and rows (bytes as hex).
"""
import json
import sys

import pytds

# Microsoft's queries, verbatim, shared with the other clients.
from link_queries import QUERIES, value

SQL_SERVER = QUERIES["sql_server"]
MANAGED_INSTANCE = QUERIES["managed_instance"]


def run(side, queries):
    conn = pytds.connect(
        server=side["host"], port=side["port"], user=side["user"], password=side["password"],
        database="master", cafile=side["ca_cert"], validate_host=False,
        login_timeout=10, timeout=10, autocommit=True,
    )
    out = {}
    cur = conn.cursor()
    cur.execute("USE MASTER")
    for name, sql in queries.items():
        cur.execute(sql)
        out[name] = {
            "columns": [d[0] for d in cur.description],
            "types": [d[1] for d in cur.description],
            "rows": [[value(v) for v in row] for row in cur.fetchall()],
        }
    conn.close()
    return out


info = json.loads(sys.stdin.readline())
print(json.dumps({
    "sql_server": run(info["sql_server"], SQL_SERVER),
    "managed_instance": run(info["managed_instance"], MANAGED_INSTANCE),
}))
