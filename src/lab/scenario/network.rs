//! Faults between the sides, and what the lab's DNS answers.

use serde::Deserialize;

use super::Listener;
use super::defaults::*;

/// Faults between the sides. In topology mode they are nftables rules per
/// direction and port; in loopback mode a fault applies to the target listener
/// whoever connects, and `unreachable` is not available.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Round-trip time the lab's TDS servers add: to the connect (on the first
    /// answer) and to every answer, so round trips can be counted here. One
    /// number for both sides, or `{ sql_server = 40, managed_instance = 60 }`.
    #[serde(default)]
    pub rtt_ms: Option<Rtt>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum Rtt {
    Both(u64),
    Sides {
        #[serde(default)]
        sql_server: u64,
        #[serde(default)]
        managed_instance: u64,
    },
}

impl Network {
    /// The round-trip time of a side (`sql_server` or `managed_instance`).
    pub fn rtt(&self, side: &str) -> std::time::Duration {
        let ms = match &self.rtt_ms {
            None => 0,
            Some(Rtt::Both(ms)) => *ms,
            Some(Rtt::Sides { sql_server, managed_instance }) => {
                if side == "sql_server" {
                    *sql_server
                } else {
                    *managed_instance
                }
            }
        };
        std::time::Duration::from_millis(ms.min(10_000))
    }
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// `sql_server`, `managed_instance`, `host` (where milink runs) or `any`.
    #[serde(default = "default_any")]
    pub from: String,
    /// `sql_server` or `managed_instance`.
    pub to: String,
    /// All TCP ports when absent.
    #[serde(default)]
    pub port: Option<u16>,
    /// With `port`, the last port of a range.
    #[serde(default)]
    pub port_to: Option<u16>,
    pub action: FaultAction,
}

impl Fault {
    /// Loopback mode cannot make an ICMP error.
    pub fn needs_topology(&self) -> bool {
        self.action == FaultAction::Unreachable
    }

    /// Whether the fault is on `port` (every port when it names none).
    pub fn covers(&self, port: u16) -> bool {
        match self.port {
            None => true,
            Some(p) => (p..=self.port_to.unwrap_or(p)).contains(&port),
        }
    }

    /// The ports it names (none when it names none: then every port the side has).
    pub fn ports(&self) -> impl Iterator<Item = u16> {
        self.port.into_iter().flat_map(|p| p..=self.port_to.unwrap_or(p))
    }

    /// In loopback mode the first fault on a side's port decides how the port answers.
    pub fn listener_at(faults: &[Fault], to: &str, port: u16) -> Option<Listener> {
        faults.iter().find(|f| f.to == to && f.covers(port)).map(|f| match f.action {
            FaultAction::Refused => Listener::Refused,
            _ => Listener::Filtered,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultAction {
    Refused,
    Filtered,
    Unreachable,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    #[serde(default)]
    pub records: Vec<DnsRecord>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsRecord {
    pub name: String,
    /// A, AAAA, CNAME, NXDOMAIN, SERVFAIL, NODATA (NOERROR, no records) or
    /// SILENT (no answer at all).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub value: Option<String>,
    /// Which side's resolver sees it: `sql_server`, `managed_instance` or `all`.
    #[serde(default = "default_all")]
    pub view: String,
}
