//! Property tests for what a server or a file sends milink: PRELOGIN, packet
//! framing, TLS records, the LOGIN answer and token streams (through milink's
//! own login and query path), certificates, profiles and scenarios. Inputs are
//! random bytes and real messages with bytes changed, cut or lengths inflated;
//! the property is always "an answer or an error, in time; never a panic".
//! Case counts are kept small so the suite stays fast.

mod files;
mod wire;

use proptest::prelude::*;

/// A real message, damaged: some bytes changed, maybe a 0xFF run (a length
/// that claims too much), maybe cut short.
pub fn damaged(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let n = base.len().max(1);
    (
        proptest::collection::vec((0..n, any::<u8>()), 0..8),
        proptest::option::of((0..n, 1usize..6)),
        proptest::option::of(0..n),
    )
        .prop_map(move |(edits, inflate, cut)| {
            let mut b = base.clone();
            for (at, v) in edits {
                if at < b.len() {
                    b[at] = v;
                }
            }
            if let Some((at, len)) = inflate {
                for i in at..(at + len).min(b.len()) {
                    b[i] = 0xFF;
                }
            }
            if let Some(c) = cut {
                b.truncate(c);
            }
            b
        })
}

/// Random bytes or a damaged `base`, half and half.
pub fn hostile(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..600), damaged(base)]
}
