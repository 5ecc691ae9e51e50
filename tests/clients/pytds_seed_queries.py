"""Microsoft's documented link queries, unchanged, through python-tds (a TDS
client nobody here wrote), over TLS, against both lab sides.

Reads the `milink lab up --json` line on stdin; prints one JSON object with
each query's column names, DB-API type codes and rows (bytes as hex).
"""
import json
import sys

import pytds

# Verbatim from shared/reference/seeds (the configure-with-scripts article).
SQL_SERVER = {
    "certificates": "SELECT * FROM sys.certificates",
    "endpoints_filtered": "SELECT * FROM sys.database_mirroring_endpoints WHERE type_desc = 'DATABASE_MIRRORING'",
    "endpoints": """SELECT
    name, type_desc, state_desc, role_desc,
    connection_auth_desc, is_encryption_enabled, encryption_algorithm_desc
FROM 
    sys.database_mirroring_endpoints""",
    "public_key": """DECLARE @sqlserver_certificate_name NVARCHAR(MAX) = N'Cert_' + @@servername  + N'_endpoint'
DECLARE @PUBLICKEYENC VARBINARY(MAX) = CERTENCODED(CERT_ID(@sqlserver_certificate_name));
SELECT @PUBLICKEYENC AS PublicKeyEncoded;""",
    "server_name": "SELECT @@SERVERNAME AS SQLServerName ",
    "availability_groups": "SELECT * FROM sys.availability_groups",
    "verify_link": """SELECT
    r.replica_server_name AS [Replica],
    r.endpoint_url AS [Endpoint],
    rs.connected_state_desc AS [Connected state],
    rs.last_connect_error_description AS [Last connection error],
    rs.last_connect_error_number AS [Last connection error No],
    rs.last_connect_error_timestamp AS [Last error timestamp]
FROM
    sys.dm_hadr_availability_replica_states rs
    JOIN sys.availability_replicas r
    ON rs.replica_id = r.replica_id""",
}
MANAGED_INSTANCE = {
    "endpoint_certificate": "EXEC sp_get_endpoint_certificate @endpoint_type = 4",
    "certificates": "SELECT * FROM sys.certificates",
}


def value(v):
    if isinstance(v, (bytes, bytearray)):
        return "0x" + v.hex().upper()
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return str(v)  # uuid.UUID, decimal.Decimal


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
