//! Low-level evidence gathering: names, ports, TLS, SQL sessions. Every step
//! has a timeout; nothing here decides what is wrong (that is `checks`).

pub mod agent;
mod batch;
pub mod dns;
pub mod sql;
pub mod tcp;
pub mod tls;
