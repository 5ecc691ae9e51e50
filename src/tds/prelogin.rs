//! PRELOGIN (MS-TDS 2.2.6.5): options both ways, the encryption byte above all.

use std::io;

use super::packet::bad;

pub const ENCRYPT_OFF: u8 = 0;
pub const ENCRYPT_ON: u8 = 1;
pub const ENCRYPT_NOT_SUP: u8 = 2;
pub const ENCRYPT_REQ: u8 = 3;

#[derive(Debug, Default)]
pub struct Prelogin {
    pub encryption: u8,
    pub fed_auth_required: bool,
}

pub fn parse(payload: &[u8]) -> io::Result<Prelogin> {
    let mut out = Prelogin { encryption: ENCRYPT_NOT_SUP, ..Default::default() };
    let mut i = 0;
    loop {
        let token = *payload.get(i).ok_or_else(|| bad("PRELOGIN option list is not terminated"))?;
        if token == 0xFF {
            return Ok(out);
        }
        let head = payload.get(i + 1..i + 5).ok_or_else(|| bad("PRELOGIN option header is cut short"))?;
        let off = u16::from_be_bytes([head[0], head[1]]) as usize;
        let len = u16::from_be_bytes([head[2], head[3]]) as usize;
        let data = payload.get(off..off + len).ok_or_else(|| bad("PRELOGIN option points outside the message"))?;
        match token {
            1 if len >= 1 => out.encryption = data[0],
            6 if len >= 1 => out.fed_auth_required = data[0] == 1,
            _ => {}
        }
        i += 5;
    }
}

/// A PRELOGIN message; client and server send the same shape.
pub fn build(version: (u32, u32, u32), encryption: u8, fed_auth: bool) -> Vec<u8> {
    let mut options: Vec<(u8, Vec<u8>)> = vec![
        (0, {
            let mut v = vec![version.0 as u8, version.1 as u8];
            v.extend((version.2 as u16).to_be_bytes());
            v.extend([0, 0]);
            v
        }),
        (1, vec![encryption]),
        (2, vec![0]),
        (3, vec![]),
        (4, vec![0]),
    ];
    if fed_auth {
        options.push((6, vec![1]));
    }
    let mut head = Vec::new();
    let mut data: Vec<u8> = Vec::new();
    let base = options.len() * 5 + 1;
    for (token, value) in &options {
        head.push(*token);
        head.extend(((base + data.len()) as u16).to_be_bytes());
        head.extend((value.len() as u16).to_be_bytes());
        data.extend(value);
    }
    head.push(0xFF);
    head.extend(data);
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_its_own_response() {
        let r = build((16, 0, 4135), ENCRYPT_ON, true);
        let p = parse(&r).unwrap();
        assert_eq!((p.encryption, p.fed_auth_required), (ENCRYPT_ON, true));
        assert!(parse(&[0x01, 0x00, 0x50, 0x00, 0x01]).is_err());
    }
}
