//! The managed instance's update policy against SQL Server's version: which
//! way a link may replicate, fail over and fail back.
//!
//! Sources: `azure-sql/managed-instance/update-policy.md` (03/18/2026) and
//! `managed-instance-link-feature-overview.md#prerequisites` (03/06/2026),
//! as summarised in mi-link-facts §0 and §7:
//! - SQL Server 2022 replicates to an instance on the 2022, 2025 or
//!   Always-up-to-date policy; SQL Server 2025 to 2025 or Always-up-to-date,
//!   not 2022.
//! - Back to SQL Server (failback, or a link made from the instance) needs the
//!   policy that matches SQL Server's version: 2022 for 2022, 2025 for 2025.
//!   Always-up-to-date never replicates back. SQL Server 2019 and older only
//!   receive nothing: the link goes to the instance and does not come back.
//! - A policy change cannot be undone.

use serde::Serialize;

/// Where the rules come from, for a finding's evidence.
pub const SOURCES: &str = "update-policy (learn.microsoft.com/azure/azure-sql/managed-instance/update-policy, 2026-03-18); \
     link feature overview, version supportability (managed-instance-link-feature-overview#prerequisites, 2026-03-06)";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Policy {
    #[serde(rename = "sql_server_2022")]
    SqlServer2022,
    #[serde(rename = "sql_server_2025")]
    SqlServer2025,
    #[serde(rename = "always_up_to_date")]
    AlwaysUpToDate,
    #[serde(rename = "unknown")]
    Unknown,
}

impl Policy {
    /// ARM's `databaseFormat`: AlwaysUpToDate, SQLServer2022 (the default), SQLServer2025.
    pub fn from_database_format(s: &str) -> Policy {
        match s.to_ascii_lowercase().as_str() {
            "alwaysuptodate" => Policy::AlwaysUpToDate,
            "sqlserver2025" => Policy::SqlServer2025,
            "sqlserver2022" | "" => Policy::SqlServer2022,
            _ => Policy::Unknown,
        }
    }

    /// From T-SQL: `SERVERPROPERTY('ProductUpdateType')` (`CU` or `Continuous`)
    /// and the instance's major version. Telling 2022 from 2025 by the
    /// version is an inference (UNCONFIRMED); ARM's `databaseFormat` says it.
    pub fn from_tsql(update_type: &str, major: u32) -> Policy {
        match (update_type.to_ascii_lowercase().as_str(), major) {
            ("continuous", _) => Policy::AlwaysUpToDate,
            ("cu", 17) => Policy::SqlServer2025,
            ("cu", 16) => Policy::SqlServer2022,
            _ => Policy::Unknown,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Policy::SqlServer2022 => "the SQL Server 2022 update policy",
            Policy::SqlServer2025 => "the SQL Server 2025 update policy",
            Policy::AlwaysUpToDate => "the Always-up-to-date update policy",
            Policy::Unknown => "an update policy milink could not read",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// SQL Server replicates to the instance, or fails over to it.
    ToManagedInstance,
    /// The instance replicates to SQL Server: failback, or a link made from it.
    ToSqlServer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Why not, and the policy that would allow it (none: no policy does).
    Refused {
        why: String,
        allowed_by: Option<Policy>,
    },
    Unknown(String),
}

fn sql_name(major: u32) -> String {
    match major {
        17 => "SQL Server 2025".into(),
        16 => "SQL Server 2022".into(),
        15 => "SQL Server 2019".into(),
        14 => "SQL Server 2017".into(),
        13 => "SQL Server 2016".into(),
        m => format!("SQL Server (major version {m})"),
    }
}

/// Whether `policy` lets a link with SQL Server `major` replicate `direction`.
pub fn allows(policy: Policy, major: u32, direction: Direction) -> Verdict {
    if policy == Policy::Unknown {
        return Verdict::Unknown("the managed instance's update policy could not be read".into());
    }
    let sql = sql_name(major);
    let matching = match major {
        16 => Some(Policy::SqlServer2022),
        17 => Some(Policy::SqlServer2025),
        _ => None,
    };
    match direction {
        Direction::ToManagedInstance => match (major, policy) {
            (17, Policy::SqlServer2022) => Verdict::Refused {
                why: format!("{sql} cannot replicate to an instance on {}", policy.name()),
                allowed_by: Some(Policy::SqlServer2025),
            },
            _ => Verdict::Allowed,
        },
        Direction::ToSqlServer => match matching {
            None => Verdict::Refused {
                why: format!("{sql} only replicates to the managed instance: there is no failback to it"),
                allowed_by: None,
            },
            Some(m) if m == policy => Verdict::Allowed,
            Some(m) if policy == Policy::AlwaysUpToDate => Verdict::Refused {
                why: format!("an instance on {} cannot replicate back to {sql}", policy.name()),
                allowed_by: Some(m),
            },
            Some(m) => Verdict::Refused {
                why: format!("{sql} needs the instance on {} to replicate back; it is on {}", m.name(), policy.name()),
                allowed_by: Some(m),
            },
        },
    }
}

impl Verdict {
    /// A sentence for a refusal: why, what would allow it, and that a policy
    /// change is one-way.
    pub fn explain(&self) -> Option<String> {
        match self {
            Verdict::Allowed => None,
            Verdict::Unknown(why) => Some(why.clone()),
            Verdict::Refused { why, allowed_by: Some(p) } => Some(format!(
                "{why}. {} would allow it; changing an instance's update policy cannot be undone.",
                capitalised(p.name())
            )),
            Verdict::Refused { why, allowed_by: None } => Some(format!("{why}.")),
        }
    }
}

pub fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::*;
    use Policy::*;

    #[test]
    fn the_documented_matrix() {
        for p in [SqlServer2022, SqlServer2025, AlwaysUpToDate] {
            assert_eq!(allows(p, 16, ToManagedInstance), Verdict::Allowed, "2022 replicates to any policy");
        }
        assert!(matches!(
            allows(SqlServer2022, 17, ToManagedInstance),
            Verdict::Refused { allowed_by: Some(SqlServer2025), .. }
        ));
        assert_eq!(allows(SqlServer2025, 17, ToManagedInstance), Verdict::Allowed);
        assert_eq!(allows(SqlServer2022, 16, ToSqlServer), Verdict::Allowed);
        assert_eq!(allows(SqlServer2025, 17, ToSqlServer), Verdict::Allowed);
        assert!(matches!(
            allows(SqlServer2025, 16, ToSqlServer),
            Verdict::Refused { allowed_by: Some(SqlServer2022), .. }
        ));
        assert!(matches!(
            allows(AlwaysUpToDate, 16, ToSqlServer),
            Verdict::Refused { allowed_by: Some(SqlServer2022), .. }
        ));
        assert!(matches!(allows(SqlServer2022, 15, ToSqlServer), Verdict::Refused { allowed_by: None, .. }));
        let e = allows(AlwaysUpToDate, 16, ToSqlServer).explain().unwrap();
        assert!(
            e.contains("The SQL Server 2022 update policy would allow it") && e.contains("cannot be undone"),
            "{e}"
        );
        assert_eq!(Policy::from_tsql("Continuous", 16), AlwaysUpToDate);
        assert_eq!(Policy::from_database_format("SQLServer2025"), SqlServer2025);
    }
}
