//! Each fault family, as a real client sees it.

use std::time::Duration;

use tiberius::EncryptionLevel;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

#[tokio::test]
async fn endpoint_open_refused_filtered() {
    let healthy = lab("healthy.toml").await;
    let ep = healthy.info.sql_server.endpoint.clone().unwrap();
    assert_eq!(probe(&ep.host, ep.port, Duration::from_millis(500)).await.0, "open");

    let refused = lab("sql-5022-refused.toml").await;
    let ep = refused.info.sql_server.endpoint.clone().unwrap();
    assert_eq!(ep.port, 5022);
    assert_eq!(probe(&ep.host, ep.port, Duration::from_millis(500)).await.0, "refused");

    let filtered = lab("mi-5022-filtered.toml").await;
    let ep = filtered.info.managed_instance.endpoint.clone().unwrap();
    let (kind, took) = probe(&ep.host, ep.port, Duration::from_millis(500)).await;
    assert_eq!(kind, "filtered");
    assert!(took >= Duration::from_millis(500));
    // The other side of the same lab is untouched.
    let other = filtered.info.sql_server.endpoint.clone().unwrap();
    assert_eq!(probe(&other.host, other.port, Duration::from_millis(500)).await.0, "open");
}

#[tokio::test]
async fn endpoint_accept_then_close() {
    let lab = lab("endpoint-accept-close.toml").await;
    let ep = lab.info.sql_server.endpoint.clone().unwrap();
    let mut s = TcpStream::connect((ep.host.as_str(), ep.port)).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await.expect("closed promptly");
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
}

#[tokio::test]
async fn endpoint_slow_connects_after_retransmission() {
    let lab = lab("endpoint-slow.toml").await;
    let ep = lab.info.managed_instance.endpoint.clone().unwrap();
    let (kind, took) = probe(&ep.host, ep.port, Duration::from_secs(5)).await;
    assert_eq!(kind, "open");
    assert!(took >= Duration::from_millis(900), "{took:?}");
}

#[tokio::test]
async fn dns_answers_by_side_nxdomain_servfail_and_silence() {
    let healthy = lab("healthy.toml").await;
    let r = resolver(&healthy, &healthy.info.sql_server.host);
    let ips = r.lookup_ip(healthy.info.managed_instance.fqdn.as_str()).await.unwrap();
    assert_eq!(ips.iter().next().unwrap().to_string(), healthy.info.managed_instance.host);

    let nx = lab("dns-nxdomain.toml").await;
    let from_sql = resolver(&nx, &nx.info.sql_server.host);
    let err = from_sql.lookup_ip(nx.info.managed_instance.fqdn.as_str()).await.unwrap_err();
    assert!(err.is_nx_domain(), "{err:?}");
    // Split horizon: the managed instance's own view still resolves it.
    let from_mi = resolver(&nx, &nx.info.managed_instance.host);
    assert!(from_mi.lookup_ip(nx.info.managed_instance.fqdn.as_str()).await.is_ok());

    let split = lab("dns-split-horizon.toml").await;
    let from_sql = resolver(&split, &split.info.sql_server.host);
    let via_cname = from_sql.lookup_ip("sql.contoso.lab.").await.unwrap();
    assert_eq!(via_cname.iter().next().unwrap().to_string(), split.info.sql_server.host);
    let from_mi = resolver(&split, &split.info.managed_instance.host);
    assert!(from_mi.lookup_ip("sqlprod01.contoso.lab.").await.unwrap_err().is_nx_domain());

    let servfail = lab("dns-servfail.toml").await;
    let err = resolver(&servfail, &servfail.info.sql_server.host)
        .lookup_ip(servfail.info.managed_instance.fqdn.as_str())
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("ServFail"), "{err:?}");

    let silent = lab("dns-no-answer.toml").await;
    let start = std::time::Instant::now();
    let err = resolver(&silent, &silent.info.sql_server.host)
        .lookup_ip(silent.info.managed_instance.fqdn.as_str())
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("Timeout") || start.elapsed() >= Duration::from_millis(600), "{err:?}");
}

#[tokio::test]
async fn bad_tds_certificates_fail_the_handshake() {
    for (file, words) in [
        ("tls-expired.toml", "expired"),
        ("tls-not-yet-valid.toml", "not valid yet"),
        ("tls-wrong-host.toml", "not valid for name"),
        ("tls-self-signed.toml", "unknown issuer"),
    ] {
        let lab = lab(file).await;
        let side = &lab.info.sql_server;
        let err = connect_with(side, config(side, EncryptionLevel::Required)).await.expect_err(file);
        let text = format!("{err:?}").to_lowercase();
        assert!(text.contains(&words.replace(' ', "")) || text.contains(words), "{file}: {text}");
        // The managed instance side of the same lab is fine.
        connect(&lab.info.managed_instance).await;
    }
}

#[tokio::test]
async fn encryption_not_supported_refuses_required_clients() {
    let lab = lab("tds-encryption-not-supported.toml").await;
    let side = &lab.info.sql_server;
    let err = connect_with(side, config(side, EncryptionLevel::Required)).await.err().unwrap();
    assert!(format!("{err}").contains("encryption level"), "{err}");
    connect_with(side, config(side, EncryptionLevel::NotSupported)).await.unwrap();
}

#[tokio::test]
async fn strict_server_turns_away_prelogin_first_clients() {
    let lab = lab("tds-strict.toml").await;
    let side = &lab.info.sql_server;
    assert!(connect_with(side, config(side, EncryptionLevel::Required)).await.is_err());
    connect_with(side, config(side, EncryptionLevel::Strict)).await.unwrap();
}

#[tokio::test]
async fn stall_after_prelogin_and_garbage() {
    let stalling = lab("tds-stall-after-prelogin.toml").await;
    let side = &stalling.info.sql_server;
    let tcp = TcpStream::connect((side.host.as_str(), side.port)).await.unwrap();
    let attempt = tiberius::Client::connect(
        config(side, EncryptionLevel::Required),
        tokio_util::compat::TokioAsyncWriteCompatExt::compat_write(tcp),
    );
    assert!(tokio::time::timeout(Duration::from_millis(800), attempt).await.is_err(), "the server stalls");

    let garbage = lab("tds-garbage.toml").await;
    let side = &garbage.info.managed_instance;
    let r = tokio::time::timeout(Duration::from_secs(3), connect_with(side, config(side, EncryptionLevel::Required)))
        .await
        .expect("garbage fails fast");
    assert!(r.is_err());
}

#[tokio::test]
async fn missing_views_and_procedures_on_older_builds() {
    // 2016 has no sys.dm_os_host_info; its Azure Connect pack brings the link's procedures.
    let old = lab("sql-2016.toml").await;
    let mut c = connect(&old.info.sql_server).await;
    match query(&mut c, "SELECT host_platform FROM sys.dm_os_host_info").await {
        Err(tiberius::error::Error::Server(e)) => assert_eq!(e.code(), 208, "{}", e.message()),
        other => panic!("{other:?}"),
    }
    assert!(query(&mut c, "EXEC sp_get_endpoint_certificate 4").await.is_ok());
    let rows = query(&mut c, "SELECT CAST(SERVERPROPERTY('ProductMajorVersion') AS int) AS v").await.unwrap();
    assert_eq!(rows[0].get::<i32, _>("v"), Some(13));
    // Without the pack, whatever the build: 2812.
    let no_pack = lab("sql-2017-no-connect-pack.toml").await;
    let mut c = connect(&no_pack.info.sql_server).await;
    match query(&mut c, "EXEC sp_get_endpoint_certificate 4").await {
        Err(tiberius::error::Error::Server(e)) => assert_eq!(e.code(), 2812, "{}", e.message()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn permission_errors_without_view_server_state() {
    let lab = lab("login-no-view-server-state.toml").await;
    let mut c = connect(&lab.info.sql_server).await;
    match query(&mut c, "SELECT role_desc FROM sys.dm_hadr_availability_replica_states").await {
        Err(tiberius::error::Error::Server(e)) => {
            assert_eq!(e.code(), 300);
            assert!(e.message().contains("VIEW SERVER STATE permission was denied"));
        }
        other => panic!("{other:?}"),
    }
    match query(&mut c, "EXEC xp_readerrorlog 0, 1, N'Mirroring'").await {
        Err(tiberius::error::Error::Server(e)) => assert_eq!(e.code(), 229),
        other => panic!("{other:?}"),
    }
    // Catalog views need no server permission.
    assert_eq!(query(&mut c, "SELECT name FROM sys.endpoints").await.unwrap().len(), 6);
}

#[tokio::test]
async fn redirect_policy_routes_to_a_node_port() {
    let lab = lab("mi-redirect.toml").await;
    let side = &lab.info.managed_instance;
    match connect_with(side, config(side, EncryptionLevel::Required)).await {
        Err(tiberius::error::Error::Routing { host, port }) => {
            assert_eq!(port, 11002);
            let mut routed = side.clone();
            routed.host = host;
            routed.port = port;
            let mut c = connect(&routed).await;
            assert_eq!(query(&mut c, "SELECT 1 AS x").await.unwrap()[0].get::<i32, _>("x"), Some(1));
        }
        other => panic!("expected routing, got {:?}", other.err()),
    }
}

#[tokio::test]
async fn malformed_tds_is_dropped_and_others_are_served() {
    let lab = lab("healthy.toml").await;
    let side = &lab.info.sql_server;
    let mut good = connect(side).await;
    for junk in [
        &b"\x12\x01\x00\x04\x00\x00\x00\x00"[..], // length shorter than the header
        &b"\x12\x01\x00\x10\x00\x00\x00\x00\x07\x00\x50\x00\x01\xff\xff\xff"[..], // options point outside
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        &[0xFFu8; 64][..],
    ] {
        let mut s = TcpStream::connect((side.host.as_str(), side.port)).await.unwrap();
        s.write_all(junk).await.unwrap();
        let mut buf = [0u8; 64];
        let r = tokio::time::timeout(Duration::from_secs(2), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(r.is_ok(), "the lab hangs up on {junk:?}");
    }
    assert_eq!(query(&mut good, "SELECT 2 AS x").await.unwrap()[0].get::<i32, _>("x"), Some(2));
    connect(side).await;
}
