//! RPC requests (MS-TDS 2.2.6.6): `sp_executesql` as drivers send it, and
//! procedures called by name.

use std::io;

use rusqlite::types::Value;

use crate::tds::packet::bad;

pub struct Rpc {
    pub proc: String,
    pub params: Vec<(Option<String>, Value)>,
}

struct Cur<'a> {
    p: &'a [u8],
    at: usize,
}

impl<'a> Cur<'a> {
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        let s = self.p.get(self.at..self.at + n).ok_or_else(|| bad("RPC request is cut short"))?;
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> io::Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> io::Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn utf16(&mut self, chars: usize) -> io::Result<String> {
        let b = self.take(chars * 2)?;
        Ok(String::from_utf16_lossy(&b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect::<Vec<_>>()))
    }
    fn plp(&mut self) -> io::Result<Option<Vec<u8>>> {
        let total = u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes"));
        if total == u64::MAX {
            return Ok(None);
        }
        let mut out = Vec::new();
        loop {
            let n = self.u32()? as usize;
            if n == 0 {
                return Ok(Some(out));
            }
            out.extend_from_slice(self.take(n)?);
        }
    }
}

fn int_le(b: &[u8]) -> i64 {
    let mut buf = [0u8; 8];
    buf[..b.len()].copy_from_slice(b);
    let v = i64::from_le_bytes(buf);
    let shift = 64 - 8 * b.len() as u32;
    if shift == 64 { 0 } else { (v << shift) >> shift }
}

fn utf16_value(b: Vec<u8>) -> Value {
    Value::Text(String::from_utf16_lossy(
        &b.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect::<Vec<_>>(),
    ))
}

pub fn parse(p: &[u8]) -> io::Result<Rpc> {
    let mut c = Cur { p, at: 0 };
    let headers = c.u32()? as usize;
    c.at = headers.max(4);
    let name_len = c.u16()?;
    let proc = if name_len == 0xFFFF {
        match c.u16()? {
            10 => "sp_executesql".to_string(),
            id => return Err(bad(format!("RPC procedure id {id} is not supported"))),
        }
    } else {
        c.utf16(name_len as usize)?
    };
    c.u16()?; // option flags
    let mut params = Vec::new();
    while c.at < p.len() {
        let nlen = c.u8()? as usize;
        let name = c.utf16(nlen)?;
        c.u8()?; // status flags
        let ty = c.u8()?;
        let value = match ty {
            0x26 | 0x68 => {
                c.u8()?;
                match c.u8()? as usize {
                    0 => Value::Null,
                    n => Value::Integer(int_le(c.take(n)?)),
                }
            }
            0x30 => Value::Integer(c.u8()? as i64),
            0x34 => Value::Integer(int_le(c.take(2)?)),
            0x38 => Value::Integer(int_le(c.take(4)?)),
            0x7F => Value::Integer(int_le(c.take(8)?)),
            0x32 => Value::Integer(c.u8()? as i64),
            0x6D => {
                c.u8()?;
                match c.u8()? {
                    4 => Value::Real(f32::from_le_bytes(c.take(4)?.try_into().expect("4")) as f64),
                    8 => Value::Real(f64::from_le_bytes(c.take(8)?.try_into().expect("8"))),
                    _ => Value::Null,
                }
            }
            0xE7 | 0xEF | 0xA7 | 0xAF | 0xA5 | 0xAD => {
                let max = c.u16()?;
                if ty != 0xA5 && ty != 0xAD {
                    c.take(5)?; // collation
                }
                let raw = if max == 0xFFFF {
                    c.plp()?
                } else {
                    match c.u16()? {
                        0xFFFF => None,
                        n => Some(c.take(n as usize)?.to_vec()),
                    }
                };
                match (raw, ty) {
                    (None, _) => Value::Null,
                    (Some(b), 0xE7 | 0xEF) => utf16_value(b),
                    (Some(b), 0xA7 | 0xAF) => Value::Text(b.iter().map(|&x| x as char).collect()),
                    (Some(b), _) => Value::Blob(b),
                }
            }
            other => {
                return Err(bad(format!("RPC parameter type {other:#04x} is not supported")));
            }
        };
        let name = match name.as_str() {
            "" => None,
            n if n.starts_with('@') => Some(n.to_ascii_lowercase()),
            n => Some(format!("@{}", n.to_ascii_lowercase())),
        };
        params.push((name, value));
    }
    Ok(Rpc { proc, params })
}
