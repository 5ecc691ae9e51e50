//! One TDS server: PRELOGIN, TLS (inside PRELOGIN or strict), LOGIN7, then
//! SQL batches and RPCs run against the side's catalog.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::token::{self, DONE_ERROR, DONE_MORE, Tokens};
use super::transport::{TlsChannel, Transport};
use super::{login7, rpc, tm};
use crate::lab::catalog::Catalog;
use crate::lab::scenario::{Encryption, TdsFault};
use crate::lab::sql::replay::{Answer, AnswerFault, Answers};
use crate::lab::sql::{self, Output, Session, SqlError, TranChange};
use crate::tds::Wire;
use crate::tds::packet::{self, bad};
use crate::tds::prelogin::{self, ENCRYPT_NOT_SUP, ENCRYPT_OFF, ENCRYPT_ON, ENCRYPT_REQ};

/// A client gets this long for PRELOGIN, TLS and LOGIN7 together.
const LOGIN_DEADLINE: Duration = Duration::from_secs(30);

pub struct TdsConfig {
    pub server_name: String,
    pub version: (u32, u32, u32),
    pub catalog: Arc<Mutex<Catalog>>,
    pub encryption: Encryption,
    /// TLS 1.2 only, for the handshake inside PRELOGIN.
    pub tls_prelogin: Arc<rustls::ServerConfig>,
    /// TLS first, ALPN `tds/8.0`.
    pub tls_strict: Arc<rustls::ServerConfig>,
    pub legacy_framing: bool,
    pub user: String,
    pub password: String,
    pub accept_access_token: bool,
    /// Every login is refused with this error (a disabled login, a replayed failure).
    pub refusal: Option<SqlError>,
    /// Statements answered as a support bundle recorded them.
    pub replay: Arc<Answers>,
    pub redirect: Option<(String, u16)>,
    pub fault: Option<TdsFault>,
    /// For `slow_queries`.
    pub delay: Duration,
    /// The network's round-trip time (`[network] rtt_ms`): the first answer
    /// waits two (the connect's and its own), every other answer one.
    pub rtt: Duration,
}

/// Serves until the task is aborted; dropping the JoinSet ends every connection.
pub async fn serve(listener: TcpListener, cfg: Arc<TdsConfig>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let cfg = cfg.clone();
                conns.spawn(async move {
                    if let Err(e) = handle(tcp, &cfg).await {
                        tracing::debug!(server = %cfg.server_name, error = %e, "connection ended");
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    LoginOnly,
    Full,
    Refuse,
}

fn negotiate(server: Encryption, client: u8) -> (u8, Mode) {
    match server {
        Encryption::NotSupported => (ENCRYPT_NOT_SUP, Mode::Plain),
        Encryption::Off => match client {
            ENCRYPT_OFF => (ENCRYPT_OFF, Mode::LoginOnly),
            ENCRYPT_NOT_SUP => (ENCRYPT_NOT_SUP, Mode::Plain),
            _ => (ENCRYPT_ON, Mode::Full),
        },
        // Force Encryption: a client that cannot encrypt is turned away.
        _ => match client {
            ENCRYPT_NOT_SUP => (ENCRYPT_REQ, Mode::Refuse),
            ENCRYPT_OFF if server == Encryption::Required => (ENCRYPT_REQ, Mode::Full),
            _ => (ENCRYPT_ON, Mode::Full),
        },
    }
}

async fn handle(tcp: TcpStream, cfg: &TdsConfig) -> io::Result<()> {
    let _ = tcp.set_nodelay(true);
    match cfg.fault {
        Some(TdsFault::Silent) => std::future::pending::<()>().await,
        Some(TdsFault::AcceptClose) => return Ok(()),
        Some(TdsFault::Reset) => {
            // Linger 0: close sends RST instead of FIN.
            let _ = socket2::SockRef::from(&tcp).set_linger(Some(Duration::ZERO));
            return Ok(());
        }
        _ => {}
    }
    let (mut transport, login, packet_size) = match tokio::time::timeout(LOGIN_DEADLINE, open(tcp, cfg)).await {
        Ok(r) => r?,
        Err(_) => return Err(io::ErrorKind::TimedOut.into()),
    };
    let Some((database, login)) = login else {
        transport.close().await;
        return Ok(());
    };
    let mut session = Session::new(&database, &login);
    session.replay = Some(cfg.replay.clone());
    loop {
        let (kind, status, payload) = packet::read_request(&mut transport, packet::FROM_CLIENT).await?;
        // A pooled connection handed to a new user: the session starts over.
        let reset = status & (packet::RESET_CONNECTION | packet::RESET_CONNECTION_SKIP_TRAN) != 0;
        if reset {
            session.reset(status & packet::RESET_CONNECTION_SKIP_TRAN == 0);
        }
        let slow = cfg.fault == Some(TdsFault::SlowQueries);
        // A slow server is slow at each statement of a batch: what is done goes out as it is done.
        if slow
            && kind == packet::SQL_BATCH
            && let Some(pieces) = sql::blocks::pieces(&batch_text(&payload)?)
        {
            for (text, works) in pieces {
                if works {
                    tokio::time::sleep(cfg.delay).await;
                }
                let outputs = run(cfg, |c| sql::execute_batch(c, &mut session, &text));
                let head = tokens(&outputs, &cfg.server_name).unfinished();
                if !head.is_empty() {
                    transport.write_all(&unfinished_frame(&head, packet_size)).await?;
                }
            }
            packet::write_message(&mut transport, packet::TABULAR_RESULT, &Tokens::default().finish(), packet_size)
                .await?;
            continue;
        }
        match cfg.fault {
            _ if slow => tokio::time::sleep(cfg.delay).await,
            Some(TdsFault::EndlessRows) if kind == packet::SQL_BATCH => return endless_rows(&mut transport).await,
            _ => {}
        }
        let mut outputs = match kind {
            packet::SQL_BATCH => {
                let text = batch_text(&payload)?;
                match cfg.replay.get(&text) {
                    Some(Answer::Rows(rs)) => vec![Output::Rows(rs.clone())],
                    Some(Answer::Error(e)) => vec![Output::Error(e.clone())],
                    Some(Answer::Fault(AnswerFault::Silence)) => std::future::pending().await,
                    Some(Answer::Fault(AnswerFault::Endless)) => return endless_rows(&mut transport).await,
                    Some(Answer::Fault(AnswerFault::HangUp)) => return Ok(()),
                    None => run(cfg, |c| sql::execute_batch(c, &mut session, &text)),
                }
            }
            packet::RPC => {
                let call = rpc::parse(&payload)?;
                run(cfg, |c| sql::execute_rpc(c, &mut session, &call.proc, &call.params))
            }
            packet::TRANSACTION_MANAGER => tm::request(&payload, &mut session, &cfg.server_name)?,
            packet::ATTENTION => {
                let mut t = Tokens::default();
                t.done(0xFD, token::DONE_ATTN, 0, 0);
                packet::write_message(&mut transport, packet::TABULAR_RESULT, &t.finish(), packet_size).await?;
                continue;
            }
            other => return Err(bad(format!("unexpected packet type {other:#04x}"))),
        };
        if reset {
            outputs.insert(0, Output::ResetAck);
        }
        // A replayed statement that broke the connection: what came before it goes out, then the fault.
        if let Some(k) = outputs.iter().position(|o| matches!(o, Output::Fault(_))) {
            let Output::Fault(fault) = outputs[k] else { unreachable!() };
            let head = tokens(&outputs[..k], &cfg.server_name).unfinished();
            if !head.is_empty() {
                transport.write_all(&unfinished_frame(&head, packet_size)).await?;
            }
            match fault {
                AnswerFault::Silence => std::future::pending::<()>().await,
                AnswerFault::Endless => return endless_rows(&mut transport).await,
                AnswerFault::HangUp => return Ok(()),
            }
        }
        let reply = encode(&outputs, &cfg.server_name);
        tokio::time::sleep(cfg.rtt).await;
        packet::write_message(&mut transport, packet::TABULAR_RESULT, &reply, packet_size).await?;
    }
}

/// COLMETADATA for one int column, then ROW tokens that never end.
async fn endless_rows(transport: &mut Transport) -> io::Result<()> {
    let mut head = Tokens::default();
    head.result_set(&[("n".to_string(), crate::lab::sql::SqlType::Int)], &[]);
    let mut meta = head.finish();
    // Keep COLMETADATA only: drop the DONE a result set ends with.
    meta.truncate(meta.len() - 13);
    // ROW: an INTN of length 4.
    let row: Vec<u8> = [0xD1u8, 4].into_iter().chain(7i32.to_le_bytes()).collect();
    let mut body = meta;
    loop {
        while body.len() < 32 * 1024 {
            body.extend_from_slice(&row);
        }
        // Packets without EOM: the message goes on.
        for chunk in body.chunks(4096 - 8) {
            let mut p = vec![packet::TABULAR_RESULT, 0, 0, 0, 0, 0, 1, 0];
            p[2..4].copy_from_slice(&((chunk.len() + 8) as u16).to_be_bytes());
            p.extend_from_slice(chunk);
            transport.write_all(&p).await?;
        }
        body.clear();
    }
}

fn run(cfg: &TdsConfig, f: impl FnOnce(&Catalog) -> Vec<Output>) -> Vec<Output> {
    let catalog = cfg.catalog.lock().unwrap_or_else(|p| p.into_inner());
    catalog.refresh();
    f(&catalog)
}

/// The database a session starts in and the login it runs as.
type Opened = Option<(String, String)>;

/// PRELOGIN, TLS and LOGIN7. Returns the database to start in and the login, or
/// `None` when the login was refused (the client has its error).
async fn open(tcp: TcpStream, cfg: &TdsConfig) -> io::Result<(Transport, Opened, usize)> {
    let mut first = [0u8; 1];
    tcp.peek(&mut first).await?;
    let tls_first = first[0] == 0x16;
    let mut transport = match (cfg.encryption, tls_first) {
        (Encryption::Strict, true) => {
            // The connect's round trip comes with the first answer.
            Transport::Tls(Box::new(TlsChannel::accept(tcp, cfg.tls_strict.clone(), None, cfg.rtt * 2, cfg.rtt).await?))
        }
        (Encryption::Strict, false) => {
            return Err(bad("strict encryption is enforced: PRELOGIN before TLS"));
        }
        (_, true) => return Err(bad("TLS before PRELOGIN, but strict encryption is off")),
        (_, false) => Transport::Plain(tcp),
    };
    let (kind, payload) = packet::read_message(&mut transport).await?;
    if kind != packet::PRELOGIN {
        return Err(bad(format!("expected PRELOGIN, got packet type {kind:#04x}")));
    }
    let client = prelogin::parse(&payload)?;
    let (reply, mode) = match cfg.encryption {
        Encryption::Strict => (ENCRYPT_NOT_SUP, Mode::Plain),
        other => negotiate(other, client.encryption),
    };
    if cfg.fault == Some(TdsFault::Garbage) {
        transport.write_all(b"\x17\x03\x03\xff\xffHTTP/1.1 400 Bad Request\r\n\r\n\xde\xad\xbe\xef").await?;
        return Err(bad("sent garbage, as the scenario asked"));
    }
    let fed_auth = client.fed_auth_required && cfg.accept_access_token;
    // The connect's round trip and PRELOGIN's (after TLS first, only PRELOGIN's).
    tokio::time::sleep(if tls_first { cfg.rtt } else { cfg.rtt * 2 }).await;
    let response = prelogin::build(cfg.version, reply, fed_auth);
    let framed = packet::frame(packet::TABULAR_RESULT, &response, 4096);
    match cfg.fault {
        Some(TdsFault::Drip) => {
            for b in framed {
                transport.write_all(&[b]).await?;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            return Err(bad("dripped PRELOGIN, as the scenario asked"));
        }
        Some(TdsFault::HugeLength) => {
            let mut lying = framed;
            lying[2..4].copy_from_slice(&u16::MAX.to_be_bytes());
            transport.write_all(&lying).await?;
            std::future::pending::<()>().await;
        }
        Some(TdsFault::WrongPacketType) => {
            transport.write_all(&packet::frame(packet::SQL_BATCH, &response, 4096)).await?;
            std::future::pending::<()>().await;
        }
        _ => transport.write_all(&framed).await?,
    }
    match cfg.fault {
        Some(TdsFault::StallAfterPrelogin) => std::future::pending::<()>().await,
        Some(TdsFault::TlsGarbage) if mode != Mode::Plain => {
            // The client's ClientHello gets a PRELOGIN packet of junk back.
            let _ = packet::read_message(&mut transport).await;
            let junk: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
            transport.write_all(&packet::frame(packet::PRELOGIN, &junk, 4096)).await?;
            std::future::pending::<()>().await;
        }
        _ => {}
    }
    let framing = if cfg.legacy_framing { packet::TABULAR_RESULT } else { packet::PRELOGIN };
    transport = match (mode, transport) {
        (Mode::Refuse, _) => return Err(bad("client cannot encrypt, server requires it")),
        (Mode::LoginOnly | Mode::Full, Transport::Plain(tcp)) => Transport::Tls(Box::new(
            TlsChannel::accept(tcp, cfg.tls_prelogin.clone(), Some(framing), cfg.rtt, cfg.rtt).await?,
        )),
        (_, t) => t,
    };
    let (kind, payload) = packet::read_message(&mut transport).await?;
    if kind != packet::LOGIN7 {
        return Err(bad(format!("expected LOGIN7, got packet type {kind:#04x}")));
    }
    let login = login7::parse(&payload)?;
    transport = match (mode, transport) {
        (Mode::LoginOnly, Transport::Tls(channel)) => Transport::Plain(channel.into_plain()),
        (_, t) => t,
    };
    let packet_size = match login.packet_size {
        0 => 4096,
        n => (n as usize).clamp(512, 32767),
    };
    let (reply, database) = login_reply(cfg, &login, packet_size);
    tokio::time::sleep(cfg.rtt).await;
    packet::write_message(&mut transport, packet::TABULAR_RESULT, &reply, packet_size).await?;
    Ok((transport, database, packet_size))
}

fn login_reply(cfg: &TdsConfig, login: &login7::Login, packet_size: usize) -> (Vec<u8>, Opened) {
    let mut t = Tokens::default();
    let server = &cfg.server_name;
    let authenticated = match &login.access_token {
        Some(token) => cfg.accept_access_token && !token.trim().is_empty(),
        None => login.user == cfg.user && login.password == cfg.password,
    };
    let fail = |t: &mut Tokens, first: Option<SqlError>| {
        if let Some(e) = first {
            t.error(&e, server);
        }
        let who = if login.access_token.is_some() { "<token-identified principal>" } else { login.user.as_str() };
        t.error(&SqlError::login_failed(who), server);
        t.done(0xFD, DONE_ERROR, 0, 0);
    };
    if !authenticated {
        fail(&mut t, None);
        return (t.finish(), None);
    }
    if let Some(e) = &cfg.refusal
        && login.access_token.is_none()
    {
        t.error(e, server);
        t.done(0xFD, DONE_ERROR, 0, 0);
        return (t.finish(), None);
    }
    let database = if login.database.is_empty() { "master".to_string() } else { login.database.clone() };
    let catalog = cfg.catalog.lock().unwrap_or_else(|p| p.into_inner());
    let Some((_, database)) =
        catalog.shown().databases.iter().find(|(_, n)| n.eq_ignore_ascii_case(&database)).cloned()
    else {
        let e = SqlError::new(
            4060,
            11,
            1,
            format!("Cannot open database \"{database}\" requested by the login. The login failed."),
        );
        fail(&mut t, Some(e));
        return (t.finish(), None);
    };
    drop(catalog);
    t.env_change(1, &database, "master");
    t.info(&SqlError::new(5701, 0, 2, format!("Changed database context to '{database}'.")), server);
    t.env_collation();
    t.env_change(2, "us_english", "");
    t.info(&SqlError::new(5703, 0, 1, "Changed language setting to us_english."), server);
    t.login_ack(cfg.version);
    if login.access_token.is_some() {
        t.fedauth_ack();
    }
    t.env_change(4, &packet_size.to_string(), "4096");
    if let Some((host, port)) = &cfg.redirect {
        t.env_routing(host, *port);
    }
    t.done(0xFD, 0, 0, 0);
    // A token's principal is the profile's login as far as the lab is concerned.
    let who = if login.access_token.is_some() { cfg.user.clone() } else { login.user.clone() };
    (t.finish(), Some((database, who)))
}

/// SQL_BATCH: ALL_HEADERS, then UTF-16LE text.
fn batch_text(payload: &[u8]) -> io::Result<String> {
    let headers = payload
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| bad("SQL batch is cut short"))?;
    let body = payload.get(headers..).ok_or_else(|| bad("ALL_HEADERS is longer than the batch"))?;
    if body.len() % 2 != 0 {
        return Err(bad("SQL batch text is not UTF-16"));
    }
    let units: Vec<u16> = body.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    Ok(String::from_utf16_lossy(&units))
}

fn encode(outputs: &[Output], server: &str) -> Vec<u8> {
    tokens(outputs, server).finish()
}

/// A response's packets with no end of message: the client waits for more.
fn unfinished_frame(payload: &[u8], packet_size: usize) -> Vec<u8> {
    let mut framed = packet::frame(packet::TABULAR_RESULT, payload, packet_size);
    // Clear EOM on the last packet (status byte of each header: index 1).
    let mut at = 0;
    while at < framed.len() {
        let len = u16::from_be_bytes([framed[at + 2], framed[at + 3]]) as usize;
        framed[at + 1] = 0;
        at += len;
    }
    framed
}

fn tokens(outputs: &[Output], server: &str) -> Tokens {
    let mut t = Tokens::default();
    for o in outputs {
        match o {
            Output::Rows(rs) => t.result_set(&rs.columns, &rs.rows),
            Output::Done => t.done(0xFD, DONE_MORE, 0, 0),
            Output::Error(e) => {
                t.error(e, server);
                t.done(0xFD, DONE_MORE | DONE_ERROR, 0, 0);
            }
            Output::Info(i) => t.info(i, server),
            Output::DatabaseChanged { old, new } => {
                t.env_change(1, new, old);
                t.info(&SqlError::new(5701, 0, 1, format!("Changed database context to '{new}'.")), server);
                t.done(0xFD, DONE_MORE, 0, 0);
            }
            Output::ReturnStatus(s) => {
                t.return_status(*s);
                t.done(0xFE, DONE_MORE, 0, 0);
            }
            Output::ResetAck => t.env_change(18, "", ""),
            Output::Fault(_) => {}
            Output::Transaction(change) => match change {
                TranChange::Began(d) => t.env_change_bytes(8, &d.to_le_bytes(), &[]),
                TranChange::Committed(d) => t.env_change_bytes(9, &[], &d.to_le_bytes()),
                TranChange::RolledBack(d) => t.env_change_bytes(10, &[], &d.to_le_bytes()),
            },
        }
    }
    t
}
