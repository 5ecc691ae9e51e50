//! LOGIN7 (MS-TDS 2.2.6.4): user, password, database, and an Azure AD token in
//! the FEDAUTH feature extension.

use std::io;

use crate::tds::packet::bad;

#[derive(Default)]
pub struct Login {
    pub user: String,
    pub password: String,
    pub database: String,
    pub packet_size: u32,
    pub access_token: Option<String>,
}

impl std::fmt::Debug for Login {
    // Never print the password or the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login").field("user", &self.user).field("database", &self.database).finish_non_exhaustive()
    }
}

fn u16_at(p: &[u8], at: usize) -> io::Result<usize> {
    p.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize).ok_or_else(|| bad("LOGIN7 is cut short"))
}

fn u32_at(p: &[u8], at: usize) -> io::Result<usize> {
    p.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| bad("LOGIN7 is cut short"))
}

fn utf16_at(p: &[u8], off: usize, chars: usize) -> io::Result<Vec<u8>> {
    p.get(off..off + chars * 2).map(<[u8]>::to_vec).ok_or_else(|| bad("LOGIN7 field points outside the message"))
}

fn decode(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
    String::from_utf16_lossy(&units)
}

/// Field (offset, length-in-characters) pairs start at byte 36.
fn field(p: &[u8], index: usize) -> io::Result<String> {
    let at = 36 + index * 4;
    Ok(decode(&utf16_at(p, u16_at(p, at)?, u16_at(p, at + 2)?)?))
}

pub fn parse(p: &[u8]) -> io::Result<Login> {
    if p.len() < 94 {
        return Err(bad("LOGIN7 is shorter than its fixed part"));
    }
    let packet_size = u32_at(p, 8)? as u32;
    let option3 = p[27];
    let mut pw = utf16_at(p, u16_at(p, 44)?, u16_at(p, 46)?)?;
    // Undo the obfuscation: XOR 0xA5, then swap the nibbles.
    for b in &mut pw {
        *b ^= 0xA5;
        *b = b.rotate_left(4);
    }
    let mut login =
        Login { user: field(p, 1)?, password: decode(&pw), database: field(p, 8)?, packet_size, access_token: None };
    if option3 & 0x10 != 0 {
        let ext = u16_at(p, 56)?;
        let mut at = u32_at(p, ext)?;
        loop {
            let id = *p.get(at).ok_or_else(|| bad("FeatureExt is not terminated"))?;
            if id == 0xFF {
                break;
            }
            let len = u32_at(p, at + 1)?;
            let data = p.get(at + 5..at + 5 + len).ok_or_else(|| bad("FeatureExt data is cut short"))?;
            if id == 0x02 && !data.is_empty() && data[0] >> 1 == 0x01 {
                let tlen = u32_at(data, 1)?;
                let token = data.get(5..5 + tlen).ok_or_else(|| bad("FEDAUTH token is cut short"))?;
                login.access_token = Some(decode(token));
            }
            at += 5 + len;
        }
    }
    Ok(login)
}
