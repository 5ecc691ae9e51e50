//! `--shard K/N`: one share of the inventory, so that N processes (a
//! Kubernetes Indexed Job, a CronJob's pods) audit a fleet together. An
//! instance belongs to the share its name hashes to, so the shares are
//! disjoint, together the whole, and stable when the inventory is reordered
//! or grows. A link is reported by one share only: its SQL Server's when that
//! SQL Server could be read, else its managed instance's; to judge it, a share
//! also reads the other side when another share owns it.

use super::inventory::{Instance, Kind};
use super::judge::LinkRow;
use super::read::Read;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based, as Kubernetes' `JOB_COMPLETION_INDEX`.
    pub k: u32,
    pub n: u32,
}

/// More shares than this is a typo, not a fleet.
const MAX_SHARDS: u32 = 10_000;

impl Shard {
    pub const WHOLE: Shard = Shard { k: 0, n: 1 };

    /// `K/N` with 0 <= K < N.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let (k, n) = s.split_once('/').ok_or_else(|| format!("`{s}` is not K/N (e.g. 0/3)"))?;
        let k: u32 = k.trim().parse().map_err(|_| format!("`{k}` in `{s}` is not a number"))?;
        let n: u32 = n.trim().parse().map_err(|_| format!("`{n}` in `{s}` is not a number"))?;
        Shard::new(k, n)
    }

    pub fn new(k: u32, n: u32) -> Result<Shard, String> {
        if n == 0 || n > MAX_SHARDS {
            return Err(format!("{n} shards: there must be 1 to {MAX_SHARDS}"));
        }
        if k >= n {
            return Err(format!("shard {k} of {n}: shards count from 0, so the last is {}", n - 1));
        }
        Ok(Shard { k, n })
    }

    /// The share an instance belongs to: FNV-1a of its name, case-insensitively.
    pub fn owns(&self, name: &str) -> bool {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.to_ascii_lowercase().bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h % u64::from(self.n) == u64::from(self.k)
    }

    pub fn label(&self) -> String {
        format!("{}/{}", self.k, self.n)
    }

    /// Whether this share reports the link: its SQL Server's share when that SQL
    /// Server could be read, else its managed instance's.
    pub fn reports(&self, row: &LinkRow, sql_readable: bool) -> bool {
        self.owns(if sql_readable { &row.sql_server } else { &row.managed_instance })
    }
}

/// The other sides of this share's links that another share owns: the managed
/// instances its SQL Servers' DAGs name, and the SQL Servers its managed
/// instances' DAGs name (to tell whether they can be read).
pub fn partners(all: &[Instance], reads: &[(usize, Result<Read, String>)], shard: &Shard) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, r) in reads {
        let Ok(read) = r else { continue };
        let from = &all[*i];
        for dag in &read.dags {
            let wanted = if from.kind == Kind::SqlServer { Kind::ManagedInstance } else { Kind::SqlServer };
            let matches = |c: &Instance| {
                c.kind == wanted
                    && (c.host.eq_ignore_ascii_case(&dag.partner_host)
                        || c.address.is_some_and(|a| a.to_string() == dag.partner_host))
            };
            for (j, c) in all.iter().enumerate() {
                if matches(c) && !shard.owns(&c.name) && !out.contains(&j) {
                    out.push(j);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_disjoint_and_together_whole() {
        let names: Vec<String> = (0..500).map(|i| format!("sql-{i:04}.contoso.lab")).collect();
        for n in [1, 3, 7] {
            let mut counts = vec![0; n as usize];
            for name in &names {
                let owners: Vec<u32> = (0..n).filter(|k| Shard::new(*k, n).unwrap().owns(name)).collect();
                assert_eq!(owners.len(), 1, "{name} in {owners:?} of {n}");
                counts[owners[0] as usize] += 1;
            }
            // Roughly even: no share more than twice its fair part.
            assert!(counts.iter().all(|c| *c <= 2 * names.len() / n as usize + 1), "{counts:?}");
        }
        assert!(Shard::parse("3/3").is_err() && Shard::parse("0/0").is_err() && Shard::parse("x").is_err());
        assert_eq!(Shard::parse(" 2 / 7 ").unwrap(), Shard { k: 2, n: 7 });
        assert!(Shard::WHOLE.owns("anything"));
    }
}
