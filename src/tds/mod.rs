//! TDS codec pieces both sides use: packet framing and PRELOGIN. The lab's
//! server (`lab::tds`) and milink's own TLS probe (`probe::tls`) share them.

pub mod packet;
pub mod prelogin;

use std::io;

/// What packet framing needs from a byte stream.
pub trait Wire {
    fn read_exact(&mut self, buf: &mut [u8]) -> impl Future<Output = io::Result<()>> + Send;
    fn write_all(&mut self, data: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
}

impl Wire for tokio::net::TcpStream {
    async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        tokio::io::AsyncReadExt::read_exact(self, buf).await.map(|_| ())
    }
    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        tokio::io::AsyncWriteExt::write_all(self, data).await
    }
}

/// In-memory bytes, for tests of the framing.
pub struct Bytes<'a>(pub &'a [u8]);

impl Wire for Bytes<'_> {
    async fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        tokio::io::AsyncReadExt::read_exact(&mut self.0, buf).await.map(|_| ())
    }
    async fn write_all(&mut self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
}
