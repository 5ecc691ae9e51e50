// Microsoft's link queries (link_queries.json) through tedious, the Node.js TDS
// client nobody here wrote, against both lab sides: autocommit (each statement
// on its own) and in tedious's own transactions (Transaction Manager requests).
//
// usage: node tedious_link_queries.js ENCRYPTION < the `milink lab up --json` line
//   ENCRYPTION  default (TLS after PRELOGIN) | strict (TDS 8: TLS first)
//
// Prints one JSON object shaped as dbapi_link_queries.py prints it, with
// tedious's type names. The lab's CA is the only one trusted.
'use strict';
const fs = require('fs');
const path = require('path');
const { Connection, Request } = require('tedious');

const QUERIES = JSON.parse(fs.readFileSync(path.join(__dirname, 'link_queries.json'), 'utf8'));

function connect(side, encryption) {
  const conn = new Connection({
    server: side.host,
    authentication: { type: 'default', options: { userName: side.user, password: side.password } },
    options: {
      port: side.port,
      database: 'master',
      encrypt: encryption === 'strict' ? 'strict' : true,
      trustServerCertificate: false,
      serverName: side.fqdn,
      cryptoCredentialsDetails: { ca: fs.readFileSync(side.ca_cert) },
      connectTimeout: 10000,
      requestTimeout: 10000,
    },
  });
  return new Promise((resolve, reject) => {
    conn.on('connect', (err) => (err ? reject(err) : resolve(conn)));
    conn.connect();
  });
}

function value(v) {
  if (Buffer.isBuffer(v)) return '0x' + v.toString('hex').toUpperCase();
  if (v instanceof Date) return v.toISOString();
  return v === undefined ? null : v;
}

function query(conn, sql) {
  return new Promise((resolve, reject) => {
    let columns = [];
    const rows = [];
    const req = new Request(sql, (err) => (err ? reject(err) : resolve({ columns, rows })));
    req.on('columnMetadata', (cols) => {
      columns = cols.map((c) => ({ name: c.colName, type: c.type.name, length: c.dataLength ?? null }));
    });
    req.on('row', (cells) => rows.push(cells.map((c) => value(c.value))));
    conn.execSqlBatch(req);
  });
}

const step = (conn, fn) => new Promise((resolve, reject) => conn[fn]((err) => (err ? reject(err) : resolve())));

async function trancount(conn) {
  return (await query(conn, 'SELECT @@TRANCOUNT AS n')).rows[0][0];
}

async function run(side, name, encryption, autocommit) {
  const conn = await connect(side, encryption);
  const out = { queries: {} };
  const all = { ...QUERIES[name], ...QUERIES.both };
  for (const [key, sql] of Object.entries(all)) {
    const r = await query(conn, sql);
    out.queries[key] = { columns: r.columns.map((c) => c.name), types: r.columns, rows: r.rows };
  }
  let began, committed, rolledBack;
  if (autocommit) {
    await query(conn, 'BEGIN TRAN');
    began = await trancount(conn);
    await query(conn, 'COMMIT');
    committed = await trancount(conn);
    await query(conn, 'BEGIN TRANSACTION');
    await query(conn, 'ROLLBACK');
    rolledBack = await trancount(conn);
  } else {
    await step(conn, 'beginTransaction');
    began = await trancount(conn);
    await step(conn, 'commitTransaction');
    committed = await trancount(conn);
    await step(conn, 'beginTransaction');
    await step(conn, 'rollbackTransaction');
    rolledBack = await trancount(conn);
  }
  out.transactions = { began, after_commit: committed, after_rollback: rolledBack };
  try {
    await query(conn, 'SELECT FOO(1)');
    out.unknown_function = null;
  } catch (e) {
    out.unknown_function = e.message;
  }
  await new Promise((resolve) => {
    conn.on('end', resolve);
    conn.close();
  });
  return out;
}

async function main() {
  const encryption = process.argv[2];
  const info = JSON.parse(fs.readFileSync(0, 'utf8').split('\n')[0]);
  const result = {};
  for (const name of ['sql_server', 'managed_instance']) {
    result[name] = {
      autocommit_on: await run(info[name], name, encryption, true),
      autocommit_off: await run(info[name], name, encryption, false),
    };
  }
  console.log(JSON.stringify(result));
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(1);
});
