//! The byte stream under TDS: plain TCP, or TLS driven sans-IO with rustls so
//! the handshake can travel inside PRELOGIN packets (TDS 7.x) or first on the
//! socket (TDS 8.0 strict).

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::ServerConnection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::tds::{Wire, packet};

pub enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsChannel>),
}

impl Wire for Transport {
    async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        match self {
            Transport::Plain(t) => Wire::read_exact(t, buf).await,
            Transport::Tls(t) => t.read_exact(buf).await,
        }
    }
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Transport::Plain(t) => Wire::write_all(t, data).await,
            Transport::Tls(t) => t.write_all(data).await,
        }
    }
}

impl Transport {
    /// Closes the way SQL Server does after refusing a login: TLS close_notify,
    /// then FIN, then what the client still sends is read and dropped, so the
    /// socket does not close with unread bytes (an RST that can take the error
    /// message with it before the client reads it).
    pub async fn close(self) {
        let mut tcp = match self {
            Transport::Plain(tcp) => tcp,
            Transport::Tls(mut ch) => {
                ch.tls.send_close_notify();
                let _ = flush(&mut ch.tcp, &mut ch.tls, None).await;
                ch.tcp
            }
        };
        let _ = tcp.shutdown().await;
        let mut sink = [0u8; 4096];
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
        })
        .await;
    }
}

pub struct TlsChannel {
    tcp: TcpStream,
    tls: ServerConnection,
}

fn tls_err(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TlsChannel {
    /// Runs the server side of the handshake. With `framing`, each flight travels
    /// in TDS packets of that type (0x12, or 0x04 as older servers send).
    /// `first` and `rtt`: how long the first server flight and each later one
    /// wait (the network's round trips, `[network] rtt_ms`).
    pub async fn accept(
        mut tcp: TcpStream,
        config: Arc<rustls::ServerConfig>,
        framing: Option<u8>,
        first: std::time::Duration,
        rtt: std::time::Duration,
    ) -> io::Result<TlsChannel> {
        let mut tls = ServerConnection::new(config).map_err(tls_err)?;
        let mut raw = vec![0u8; 16 * 1024];
        // What the next server flight waits: `first` for the first, then a
        // round trip for each that answers a client flight.
        let mut owed = first;
        while tls.is_handshaking() {
            if tls.wants_write() {
                tokio::time::sleep(std::mem::take(&mut owed)).await;
                flush(&mut tcp, &mut tls, framing).await?;
                continue;
            }
            if owed.is_zero() {
                owed = rtt;
            }
            let data = match framing {
                Some(_) => {
                    let (kind, payload) = packet::read_message(&mut tcp).await?;
                    if kind != packet::PRELOGIN {
                        return Err(packet::bad(format!("packet type {kind:#04x} during the TLS handshake")));
                    }
                    payload
                }
                None => {
                    let n = tcp.read(&mut raw).await?;
                    if n == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    raw[..n].to_vec()
                }
            };
            let mut rd = &data[..];
            while !rd.is_empty() {
                tls.read_tls(&mut rd)?;
                tls.process_new_packets().map_err(tls_err)?;
            }
        }
        if tls.wants_write() {
            // TLS 1.2 (inside PRELOGIN): the client waits for this last flight, a
            // round trip. TLS 1.3 (strict): it is session tickets nobody waits for.
            if framing.is_some() {
                tokio::time::sleep(owed).await;
            }
            flush(&mut tcp, &mut tls, framing).await?;
        }
        Ok(TlsChannel { tcp, tls })
    }

    /// Drops TLS after a login-only exchange; the socket carries plain TDS again.
    pub fn into_plain(self) -> TcpStream {
        self.tcp
    }

    async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut filled = 0;
        let mut raw = vec![0u8; 16 * 1024];
        while filled < buf.len() {
            match self.tls.reader().read(&mut buf[filled..]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    filled += n;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            let n = self.tcp.read(&mut raw).await?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let mut rd = &raw[..n];
            while !rd.is_empty() {
                self.tls.read_tls(&mut rd)?;
                self.tls.process_new_packets().map_err(tls_err)?;
            }
            if self.tls.wants_write() {
                flush(&mut self.tcp, &mut self.tls, None).await?;
            }
        }
        Ok(())
    }

    /// rustls takes a bounded amount of plaintext at a time (64 KiB by
    /// default): a large answer goes out in pieces, each sent before the next.
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let mut rest = data;
        while !rest.is_empty() {
            let n = self.tls.writer().write(rest)?;
            flush(&mut self.tcp, &mut self.tls, None).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            rest = &rest[n..];
        }
        Ok(())
    }
}

async fn flush(tcp: &mut TcpStream, tls: &mut ServerConnection, framing: Option<u8>) -> io::Result<()> {
    let mut out = Vec::new();
    while tls.wants_write() {
        tls.write_tls(&mut out)?;
    }
    match framing {
        Some(kind) => AsyncWriteExt::write_all(tcp, &packet::frame(kind, &out, 4096)).await,
        None => AsyncWriteExt::write_all(tcp, &out).await,
    }
}
