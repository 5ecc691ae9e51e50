//! TDS packet framing (MS-TDS 2.2.3): an 8-byte header, messages split across
//! packets and ended by the EOM status bit.

use std::io;

use super::Wire;

pub const SQL_BATCH: u8 = 0x01;
pub const RPC: u8 = 0x03;
pub const TABULAR_RESULT: u8 = 0x04;
pub const ATTENTION: u8 = 0x06;
pub const TRANSACTION_MANAGER: u8 = 0x0E;
pub const LOGIN7: u8 = 0x10;
pub const PRELOGIN: u8 = 0x12;

const HEADER: usize = 8;
const EOM: u8 = 0x01;
/// Status bits a pooled client sets on the first packet of a request: reset the
/// session first, with or without ending its transaction (MS-TDS 2.2.3.1.2).
pub const RESET_CONNECTION: u8 = 0x08;
pub const RESET_CONNECTION_SKIP_TRAN: u8 = 0x10;
/// A hostile client must not make the lab buffer without bound.
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;

pub fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Types a client may send (MS-TDS 2.2.3.1.1); anything else is not TDS.
pub const FROM_CLIENT: &[u8] = &[0x01, 0x03, 0x06, 0x07, 0x0E, 0x10, 0x11, 0x12];
/// What a server answers PRELOGIN and a TLS flight with: 0x04, or 0x12 as most do.
pub const FROM_SERVER_PRELOGIN: &[u8] = &[TABULAR_RESULT, PRELOGIN];

/// Reads one whole message from a client; all its packets must share one type.
pub async fn read_message<W: Wire>(r: &mut W) -> io::Result<(u8, Vec<u8>)> {
    read_message_of(r, FROM_CLIENT).await
}

/// Reads one whole message whose packet type is one of `accepts`.
pub async fn read_message_of<W: Wire>(r: &mut W, accepts: &[u8]) -> io::Result<(u8, Vec<u8>)> {
    read_request(r, accepts).await.map(|(kind, _, payload)| (kind, payload))
}

/// Reads one whole message with its first packet's status bits.
pub async fn read_request<W: Wire>(r: &mut W, accepts: &[u8]) -> io::Result<(u8, u8, Vec<u8>)> {
    let mut payload = Vec::new();
    let mut kind = None;
    let mut status = None;
    loop {
        let mut h = [0u8; HEADER];
        r.read_exact(&mut h).await?;
        if !accepts.contains(&h[0]) {
            return Err(bad(format!("packet type {:#04x} is not expected here", h[0])));
        }
        let len = u16::from_be_bytes([h[2], h[3]]) as usize;
        if len < HEADER {
            return Err(bad(format!("packet length {len} is shorter than its header")));
        }
        match kind {
            None => kind = Some(h[0]),
            Some(k) if k != h[0] => return Err(bad("packet type changed inside a message")),
            _ => {}
        }
        let status = *status.get_or_insert(h[1]);
        if payload.len() + len - HEADER > MAX_MESSAGE {
            return Err(bad("message too large"));
        }
        let start = payload.len();
        payload.resize(start + len - HEADER, 0);
        r.read_exact(&mut payload[start..]).await?;
        if h[1] & EOM != 0 {
            return Ok((h[0], status, payload));
        }
    }
}

/// Frames `payload` as packets of at most `packet_size` bytes.
pub fn frame(kind: u8, payload: &[u8], packet_size: usize) -> Vec<u8> {
    let chunk = packet_size.clamp(512, 32767) - HEADER;
    let mut out = Vec::with_capacity(payload.len() + HEADER * (payload.len() / chunk + 1));
    let chunks: Vec<&[u8]> = if payload.is_empty() { vec![&[][..]] } else { payload.chunks(chunk).collect() };
    let last = chunks.len() - 1;
    for (i, c) in chunks.into_iter().enumerate() {
        let len = (c.len() + HEADER) as u16;
        out.extend_from_slice(&[kind, if i == last { EOM } else { 0 }]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&[0, 0, (i + 1) as u8, 0]);
        out.extend_from_slice(c);
    }
    out
}

pub async fn write_message<W: Wire>(w: &mut W, kind: u8, payload: &[u8], packet_size: usize) -> io::Result<()> {
    w.write_all(&frame(kind, payload, packet_size)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_across_packets() {
        let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let wire = frame(SQL_BATCH, &payload, 1024);
        assert_eq!(wire.len(), payload.len() + 3 * HEADER);
        let (kind, back) = read_message(&mut super::super::Bytes(&wire[..])).await.unwrap();
        assert_eq!((kind, back), (SQL_BATCH, payload));
    }

    #[tokio::test]
    async fn rejects_a_short_length() {
        let wire = [0x01, 0x01, 0x00, 0x04, 0, 0, 1, 0];
        assert!(read_message(&mut super::super::Bytes(&wire[..])).await.is_err());
    }
}
