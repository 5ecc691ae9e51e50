//! Bytes from the network.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use milink::deadline::Limit;
use milink::lab::certs::LabCa;
use milink::lab::scenario::TlsCert;
use milink::lab::sql::SqlType;
use milink::lab::tds::token::Tokens;
use milink::lab::tds::transport::{TlsChannel, Transport};
use milink::probe::sql::{self, Auth, Target};
use milink::probe::tls;
use milink::profile::Secret;
use milink::tds::{Bytes, Wire, packet, prelogin};
use proptest::prelude::*;
use tokio::net::TcpListener;

use super::hostile;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn prelogin_parse_never_panics(bytes in hostile(prelogin::build((16, 0, 4000), prelogin::ENCRYPT_ON, true))) {
        let _ = prelogin::parse(&bytes);
    }

    #[test]
    fn prelogin_round_trips(v in any::<(u8, u8, u16)>(), enc in 0u8..4, fed in any::<bool>()) {
        let p = prelogin::parse(&prelogin::build((v.0 as u32, v.1 as u32, v.2 as u32), enc, fed)).unwrap();
        prop_assert_eq!(p.encryption, enc);
    }

    #[test]
    fn packet_reads_never_panic_and_stay_bounded(bytes in hostile(packet::frame(packet::TABULAR_RESULT, &[7; 3000], 512))) {
        runtime().block_on(async {
            if let Ok((_, payload)) = packet::read_message_of(&mut Bytes(&bytes), &[packet::TABULAR_RESULT]).await {
                assert!(payload.len() <= bytes.len());
            }
        });
    }

    #[test]
    fn framing_round_trips(payload in proptest::collection::vec(any::<u8>(), 0..20_000), size in 512usize..32_768) {
        let framed = packet::frame(packet::SQL_BATCH, &payload, size);
        let (kind, back) = runtime().block_on(packet::read_message(&mut Bytes(&framed))).unwrap();
        prop_assert_eq!(kind, packet::SQL_BATCH);
        prop_assert_eq!(back, payload);
    }
}

/// Accepts one client and answers its PRELOGIN: encryption on.
async fn after_prelogin(l: TcpListener) -> Option<tokio::net::TcpStream> {
    let (mut tcp, _) = l.accept().await.ok()?;
    packet::read_message(&mut tcp).await.ok()?;
    let reply = prelogin::build((16, 0, 4000), prelogin::ENCRYPT_ON, false);
    packet::write_message(&mut tcp, packet::TABULAR_RESULT, &reply, 4096).await.ok()?;
    Some(tcp)
}

/// A server that answers PRELOGIN properly and then sends `after` where the
/// TLS handshake should be (in PRELOGIN packets, as SQL Server frames it).
async fn tls_junk_server(after: Vec<u8>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let Some(mut tcp) = after_prelogin(l).await else { return };
        let _ = Wire::write_all(&mut tcp, &packet::frame(packet::PRELOGIN, &after, 4096)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    });
    addr
}

/// TLS records: a type, a version, a length that may lie, and a body.
fn tls_records() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        (0x14u8..0x19, any::<u16>(), any::<u16>(), proptest::collection::vec(any::<u8>(), 0..300)),
        1..4,
    )
    .prop_map(|records| {
        let mut out = Vec::new();
        for (kind, version, len, body) in records {
            out.push(kind);
            out.extend(version.to_be_bytes());
            out.extend(len.to_be_bytes());
            out.extend(body);
        }
        out
    })
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn tls_capture_takes_any_handshake_answer(after in prop_oneof![tls_records(), proptest::collection::vec(any::<u8>(), 0..400)]) {
        runtime().block_on(async {
            let addr = tls_junk_server(after).await;
            let start = Instant::now();
            let out = tls::capture(addr, "localhost", Limit::new(Duration::from_secs(1))).await;
            assert!(!matches!(out, tls::Outcome::Captured(_)), "junk is not a certificate");
            assert!(start.elapsed() < Duration::from_secs(3));
        });
    }
}

fn login_reply() -> Vec<u8> {
    let mut t = Tokens::default();
    t.env_change(1, "master", "master");
    t.env_collation();
    t.login_ack((16, 0, 4000));
    t.env_change(4, "4096", "4096");
    t.done(0xFD, 0, 0, 0);
    t.finish()
}

fn query_reply() -> Vec<u8> {
    use rusqlite::types::Value;
    let mut t = Tokens::default();
    let columns = vec![
        ("name".to_string(), SqlType::NVarChar(Some(128))),
        ("n".to_string(), SqlType::BigInt),
        ("big".to_string(), SqlType::NVarChar(None)),
        ("when".to_string(), SqlType::DateTime),
    ];
    let row = vec![
        Value::Text("SalesDB".into()),
        Value::Integer(42),
        Value::Text("x".repeat(40)),
        Value::Text("2026-11-23 10:00:00.000".into()),
    ];
    t.result_set(&columns, &[row.clone(), row]);
    t.finish()
}

/// A SQL login to `addr` that trusts its certificate.
fn target(addr: SocketAddr) -> Target {
    Target {
        name: "localhost".into(),
        addr,
        auth: Auth::Sql { user: "u".into(), password: Secret::new("p") },
        ca_cert: None,
        trust_server_certificate: true,
        strict: false,
    }
}

/// One certificate for every case.
fn server_tls() -> Arc<rustls::ServerConfig> {
    static TLS: std::sync::OnceLock<Arc<rustls::ServerConfig>> = std::sync::OnceLock::new();
    TLS.get_or_init(|| {
        let id = LabCa::new().unwrap().server_identity("localhost", TlsCert::Valid, None).unwrap();
        milink::lab::tds::tls_configs(&id).unwrap().0
    })
    .clone()
}

/// A TDS server with a real TLS handshake whose answers to LOGIN7 and to the
/// first query are the bytes given.
async fn token_server(login: Vec<u8>, query: Vec<u8>, tls: Arc<rustls::ServerConfig>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let Some(tcp) = after_prelogin(l).await else { return };
        let Ok(channel) = TlsChannel::accept(tcp, tls, Some(packet::PRELOGIN), Duration::ZERO, Duration::ZERO).await
        else {
            return;
        };
        let mut t = Transport::Tls(Box::new(channel));
        if packet::read_message(&mut t).await.is_err() {
            return;
        }
        let _ = t.write_all(&packet::frame(packet::TABULAR_RESULT, &login, 4096)).await;
        if packet::read_message(&mut t).await.is_ok() {
            let _ = t.write_all(&packet::frame(packet::TABULAR_RESULT, &query, 4096)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    });
    addr
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn login_and_token_streams_never_panic(login in hostile(login_reply()), query in hostile(query_reply())) {
        runtime().block_on(async {
            let addr = token_server(login, query, server_tls()).await;
            let target = target(addr);
            let start = Instant::now();
            // A damaged length can leave the client waiting for bytes that never come.
            if let Ok(mut s) = sql::login(&target, Limit::new(Duration::from_millis(300))).await {
                let _ = s.rows("SELECT 1").await;
            }
            assert!(start.elapsed() < Duration::from_secs(1));
        });
    }

    #[test]
    fn an_undamaged_stream_reads_back(_x in 0..1u8) {
        // The control: the same server with the real answers logs in and reads two rows.
        runtime().block_on(async {
            let addr = token_server(login_reply(), query_reply(), server_tls()).await;
            let target = target(addr);
            let mut s = sql::login(&target, Limit::new(Duration::from_secs(2))).await.unwrap();
            let rows = s.rows("SELECT 1").await.unwrap();
            assert_eq!(rows.len(), 2);
            assert_eq!(rows[0]["name"], "SalesDB");
        });
    }
}
