"""Microsoft's link queries (link_queries.json) through a Python DB-API driver
nobody here wrote, against both lab sides, with autocommit on and off:
mssql-python (Microsoft's driver, ODBC Driver 18 inside) or pymssql (FreeTDS).

usage: dbapi_link_queries.py DRIVER ENCRYPTION [wrong-password SIDE] < the `milink lab up --json` line
  DRIVER      mssql_python | pymssql
  ENCRYPTION  default (TLS after PRELOGIN) | strict (TDS 8: TLS first)
  wrong-password SIDE: log in to SIDE with a wrong password instead, and print
              the error number and text the driver hands over (one refused login
              per process: pymssql keeps only the first one's server text, against
              SQL Server too)

Prints one JSON object: per side and autocommit mode, each query's columns,
Python type names and rows, @@TRANCOUNT around a committed and a rolled-back
transaction, and the text of an error. The lab's CA is the only one trusted.
"""
import json
import os
import sys
import tempfile

from link_queries import QUERIES, value


def mssql_python_connect(side, encryption, autocommit):
    import mssql_python

    os.environ["SSL_CERT_FILE"] = side["ca_cert"]
    encrypt = "strict" if encryption == "strict" else "yes"
    conn_str = (
        f"Server=tcp:{side['host']},{side['port']};Database=master;"
        f"UID={side['user']};PWD={side['password']};"
        f"Encrypt={encrypt};TrustServerCertificate=no;HostNameInCertificate={side['fqdn']};"
    )
    return mssql_python.connect(conn_str, autocommit=autocommit, timeout=10)


def pymssql_connect(side, encryption, autocommit):
    import pymssql

    # Strict encryption and a CA file are freetds.conf settings, not connect() ones.
    conf = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
    conf.write(
        "[lab]\n"
        f"host = {side['host']}\nport = {side['port']}\ntds version = 7.4\n"
        f"encryption = {'strict' if encryption == 'strict' else 'require'}\n"
        f"ca file = {side['ca_cert']}\n"
        # The lab is reached by address; the name check is the other clients' job.
        "check certificate hostname = no\n"
    )
    conf.close()
    os.environ["FREETDSCONF"] = conf.name
    return pymssql.connect(
        server="lab", user=side["user"], password=side["password"], database="master",
        login_timeout=10, timeout=10, autocommit=autocommit,
    )


CONNECT = {"mssql_python": mssql_python_connect, "pymssql": pymssql_connect}


def trancount(cur):
    cur.execute("SELECT @@TRANCOUNT AS n")
    return cur.fetchall()[0][0]


def run(connect, side, name, encryption, autocommit):
    conn = connect(side, encryption, autocommit)
    cur = conn.cursor()
    out = {"queries": {}}
    queries = dict(QUERIES[name])
    queries.update(QUERIES["both"])
    for key, sql in queries.items():
        cur.execute(sql)
        rows = cur.fetchall()
        out["queries"][key] = {
            "columns": [d[0] for d in cur.description],
            "types": [sorted({type(r[i]).__name__ for r in rows if r[i] is not None}) for i in range(len(cur.description))],
            "rows": [[value(v) for v in row] for row in rows],
        }
    if autocommit:
        # T-SQL transactions, as a DBA types them.
        cur.execute("BEGIN TRAN")
        began = trancount(cur)
        cur.execute("COMMIT")
        committed = trancount(cur)
        cur.execute("BEGIN TRANSACTION")
        cur.execute("ROLLBACK")
        rolled_back = trancount(cur)
    else:
        # The driver's own transactions (a Transaction Manager request for ODBC).
        began = trancount(cur)
        conn.commit()
        committed = trancount(cur)
        conn.rollback()
        rolled_back = trancount(cur)
    out["transactions"] = {"began": began, "after_commit": committed, "after_rollback": rolled_back}
    try:
        cur.execute("SELECT FOO(1)")
        out["unknown_function"] = None
    except Exception as e:  # the driver's own error class
        out["unknown_function"] = str(e)
    conn.close()
    return out


def reused(connect, side, encryption):
    """A pooled connection's next user starts in the login's database with an
    empty transaction, whatever the last one left (mssql-python pools by default)."""
    conn = connect(side, encryption, False)
    cur = conn.cursor()
    cur.execute("USE msdb")
    cur.execute("BEGIN TRAN")
    conn.close()
    conn = connect(side, encryption, True)
    cur = conn.cursor()
    cur.execute("SELECT DB_NAME() AS db, @@TRANCOUNT AS n")
    db, n = cur.fetchall()[0]
    conn.close()
    return {"database": db, "trancount": n}


def wrong_password(connect, side, encryption):
    """The error a refused login hands the application: number and text."""
    try:
        connect(dict(side, password=side["password"] + "-wrong"), encryption, True).close()
        return {"connected": True}
    except Exception as e:  # each driver has its own class; the args say what the server said
        args = getattr(e, "args", ())
        number = args[0][0] if args and isinstance(args[0], tuple) else None
        text = args[0][1] if args and isinstance(args[0], tuple) else str(e)
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        return {"number": number, "message": text}


def main():
    driver, encryption = sys.argv[1], sys.argv[2]
    info = json.loads(sys.stdin.readline())
    if sys.argv[3:4] == ["wrong-password"]:
        print(json.dumps(wrong_password(CONNECT[driver], info[sys.argv[4]], encryption)))
        return
    result = {}
    for name in ("sql_server", "managed_instance"):
        result[name] = {
            mode: run(CONNECT[driver], info[name], name, encryption, mode == "autocommit_on")
            for mode in ("autocommit_on", "autocommit_off")
        }
        result[name]["reused"] = reused(CONNECT[driver], info[name], encryption)
    print(json.dumps(result))


main()
