//! What link errors mean: one entry per error number or message pattern, with
//! its likely causes, the evidence that confirms each, the fix and the doc.
//! Texts from shared/reference/mi-link-facts.md §2; UNCONFIRMED says so.

pub struct Entry {
    pub id: &'static str,
    /// Matches `last_connect_error_number`, a seeding error code, or `Msg N` in a log line.
    pub number: Option<i64>,
    /// Matches text (case-insensitive) in an error description or error-log line.
    pub pattern: Option<&'static str>,
    pub meaning: &'static str,
    /// Likely causes, each with the evidence (check IDs) that would confirm it.
    pub causes: &'static [(&'static str, &'static [&'static str])],
    pub fix: &'static str,
    pub doc: &'static str,
}

pub const TROUBLESHOOT: &str =
    "https://learn.microsoft.com/azure/azure-sql/managed-instance/managed-instance-link-troubleshoot-how-to";
const ERRORS_35: &str = "https://learn.microsoft.com/sql/relational-databases/errors-events/database-engine-events-and-errors-35000-to-35999";

pub static ENTRIES: &[Entry] = &[
    Entry {
        id: "41962",
        number: Some(41962),
        pattern: None,
        meaning: "Replication did not start within the time allowed (5 minutes).",
        causes: &[(
            "network or firewall between the sides",
            &["network-mi-to-sql-5022", "network-sql-to-mi-5022", "network-mi-5022"],
        )],
        fix: "Open 5022 both ways and 11000-11999 to the managed instance subnet, then re-create the link.",
        doc: TROUBLESHOOT,
    },
    Entry {
        id: "41973",
        number: Some(41973),
        pattern: None,
        meaning: "SQL Server's endpoint certificate is not imported into the managed instance.",
        causes: &[(
            "SQL Server's certificate was never uploaded, or was rotated without uploading the new one",
            &["cert-sql-trusted-on-mi"],
        )],
        fix: "Upload SQL Server's public key: New-AzSqlInstanceServerTrustCertificate -PublicKey <CERTENCODED(CERT_ID(N'<cert>'))>.",
        doc: TROUBLESHOOT,
    },
    Entry {
        id: "41974",
        number: Some(41974),
        pattern: None,
        meaning: "The managed instance's endpoint certificate is not imported into SQL Server.",
        causes: &[(
            "not imported, imported under another name than the MI FQDN, or rotated by Azure since",
            &["cert-mi-imported"],
        )],
        fix: "CREATE CERTIFICATE [<MI FQDN>] FROM BINARY = <EXEC sp_get_endpoint_certificate 4 on the MI>.",
        doc: TROUBLESHOOT,
    },
    Entry {
        id: "41976",
        number: Some(41976),
        pattern: None,
        meaning: "The availability group at the partner endpoint is not responding: it is missing there, or names or parameters are wrong.",
        causes: &[
            ("the AG or distributed AG is missing or misnamed on the partner", &["link-present"]),
            ("SQL Server 2016/2017 without the Azure Connect pack (redirect string empty)", &["instance-sql-version"]),
        ],
        fix: "Check the AG and DAG names on both sides and read the partner's error log; install the Azure Connect pack on 2016/2017.",
        doc: TROUBLESHOOT,
    },
    Entry {
        id: "41977",
        number: Some(41977),
        pattern: None,
        meaning: "Connected, but the target database does not respond.",
        causes: &[("wrong database or link parameters", &["link-present"])],
        fix: "Check the link's parameters (database, AG names) and re-create it.",
        doc: TROUBLESHOOT,
    },
    Entry {
        id: "41986",
        number: Some(41986),
        pattern: None,
        meaning: "The connection to SQL Server failed, or got no response after a prolonged period.",
        causes: &[("names, parameters or network", &["network-mi-to-sql-5022", "dns-sql-host-from-mi"])],
        fix: "Check the endpoint URL, the names, and 5022 from the managed instance to SQL Server.",
        doc: TROUBLESHOOT,
    },
    Entry {
        id: "47521",
        number: Some(47521),
        pattern: None,
        meaning: "The secondary did not receive the request (message text not found; doc paraphrase).",
        causes: &[("the AG or database is unhealthy on the primary", &["link-sync-health"])],
        fix: "Check AG and database health on the primary.",
        doc: TROUBLESHOOT,
    },
    Entry {
        id: "1408",
        number: Some(1408),
        pattern: None,
        meaning: "The remote copy is not recovered far enough to join the availability group.",
        causes: &[("a log backup truncated the log during seeding", &["database-log-backup"])],
        fix: "Drop and re-create the link, and pause log backups until seeding completes.",
        doc: TROUBLESHOOT,
    },
    Entry {
        id: "1801",
        number: Some(1801),
        pattern: None,
        meaning: "Seeding could not create the database on the managed instance: a database of that name already exists there.",
        causes: &[("a database of the same name already on the managed instance", &["database-mi-name-free"])],
        fix: "Drop or rename the managed instance's database of that name (once nothing in it is needed), then drop and re-create the link.",
        doc: TROUBLESHOOT,
    },
    Entry {
        id: "1412",
        number: Some(1412),
        pattern: None,
        meaning: "The remote copy has not been rolled forward to a point covered by the local log.",
        causes: &[("a log backup truncated the log during seeding", &["database-log-backup"])],
        fix: "Drop and re-create the link, and pause log backups until seeding completes.",
        doc: TROUBLESHOOT,
    },
    Entry {
        id: "35201",
        number: Some(35201),
        pattern: None,
        meaning: "A connection timeout while connecting to the replica: a network or firewall issue, or the endpoint address is not the mirroring endpoint.",
        causes: &[
            ("a firewall drops 5022 on the way in to SQL Server", &["network-mi-to-sql-5022", "network-sql-5022"]),
            (
                "a firewall or NSG drops 5022 on the way in to the managed instance",
                &["network-sql-to-mi-5022", "network-mi-5022"],
            ),
            ("the endpoint URL points elsewhere", &["endpoint-sql-port"]),
        ],
        fix: "Open TCP 5022 between the sides (both directions) and check the endpoint URL's host and port.",
        doc: ERRORS_35,
    },
    Entry {
        id: "35202",
        number: Some(35202),
        pattern: None,
        meaning: "A connection was established (informational).",
        causes: &[],
        fix: "Nothing to fix.",
        doc: ERRORS_35,
    },
    Entry {
        id: "35204",
        number: Some(35204),
        pattern: None,
        meaning: "The mirroring endpoint is disabled or stopped.",
        causes: &[("the endpoint was stopped", &["endpoint-sql-started"])],
        fix: "ALTER ENDPOINT [<endpoint>] STATE = STARTED;",
        doc: ERRORS_35,
    },
    Entry {
        id: "35206",
        number: Some(35206),
        pattern: None,
        meaning: "A timeout on an established connection: the network dropped it, or the replica went RESOLVING.",
        causes: &[(
            "an unstable network path or an idle timeout on a firewall",
            &["network-sql-to-mi-5022", "network-mi-to-sql-5022"],
        )],
        fix: "Look for idle timeouts or drops on firewalls between the sides.",
        doc: ERRORS_35,
    },
    Entry {
        id: "35207",
        number: Some(35207),
        pattern: None,
        meaning: "The connection attempt failed: the description says how (an operating-system error number, or a failed endpoint handshake).",
        causes: &[("see the OS error or the handshake failure in the description", &[])],
        fix: "Read the description: 10060 timeout, 10061 refused, 10054 reset; a handshake failure names authentication, encryption or a certificate.",
        doc: ERRORS_35,
    },
    Entry {
        id: "os-10054",
        number: None,
        pattern: Some("10054("),
        meaning: "The peer reset the connection (OS error 10054; not named in the link docs: UNCONFIRMED for the link).",
        causes: &[("a firewall or proxy resets 5022, or the peer closed it", &["network-sql-5022"])],
        fix: "Look for devices that reset 5022 between the sides.",
        doc: TROUBLESHOOT,
    },
    Entry {
        id: "os-10060",
        number: None,
        pattern: Some("10060("),
        meaning: "The connection attempt timed out (OS error 10060): nothing answered.",
        causes: &[("a firewall drops 5022", &["network-mi-to-sql-5022", "network-sql-to-mi-5022"])],
        fix: "Open 5022 between the sides.",
        doc: TROUBLESHOOT,
    },
    Entry {
        id: "os-10061",
        number: None,
        pattern: Some("10061("),
        meaning: "The connection was refused (OS error 10061): nothing listens on the endpoint port.",
        causes: &[(
            "the endpoint is missing, stopped or on another port",
            &["endpoint-sql-present", "endpoint-sql-started", "endpoint-sql-port"],
        )],
        fix: "Create or start the mirroring endpoint on the port the endpoint URL names.",
        doc: TROUBLESHOOT,
    },
    Entry {
        id: "connect-permission",
        number: None,
        pattern: Some("does not have connect permission on the endpoint"),
        meaning: "The endpoint refused the partner's login: with Windows authentication the managed instance's connection has no Windows identity on SQL Server (third-party text; UNCONFIRMED for the link).",
        causes: &[("the endpoint authenticates with Windows only", &["endpoint-sql-auth"])],
        fix: "Give the endpoint certificate authentication: ALTER ENDPOINT [<endpoint>] FOR DATABASE_MIRRORING (AUTHENTICATION = WINDOWS NEGOTIATE CERTIFICATE [<certificate>]).",
        doc: TROUBLESHOOT,
    },
    Entry {
        id: "auth-mismatch",
        number: None,
        pattern: Some("no compatible authentication protocol"),
        meaning: "The endpoints share no authentication protocol: the managed instance's endpoint authenticates with certificates only (the text is of the same family as the documented encryption one; its state number is UNCONFIRMED).",
        causes: &[("the endpoint authenticates with Windows only", &["endpoint-sql-auth"])],
        fix: "Give the endpoint certificate authentication: ALTER ENDPOINT [<endpoint>] FOR DATABASE_MIRRORING (AUTHENTICATION = WINDOWS NEGOTIATE CERTIFICATE [<certificate>]).",
        doc: TROUBLESHOOT,
    },
    Entry {
        id: "encryption-mismatch",
        number: None,
        pattern: Some("no compatible encryption algorithm"),
        meaning: "The endpoints' encryption settings share no algorithm; the link needs AES.",
        causes: &[("SQL Server's endpoint uses RC4 only, or encryption is off", &["endpoint-sql-encryption"])],
        fix: "ALTER ENDPOINT [<endpoint>] FOR DATABASE_MIRRORING (ENCRYPTION = REQUIRED ALGORITHM AES);",
        doc: TROUBLESHOOT,
    },
    Entry {
        id: "certificate-handshake",
        number: None,
        pattern: Some("certificate"),
        meaning: "The endpoint handshake failed on a certificate (exact texts and states UNCONFIRMED).",
        causes: &[
            ("SQL Server's endpoint certificate expired", &["cert-sql-endpoint-expiry"]),
            ("the managed instance's certificate on SQL Server is missing or stale", &["cert-mi-imported"]),
            ("SQL Server's certificate is not on the managed instance", &["cert-sql-trusted-on-mi"]),
        ],
        fix: "Fix the certificate the evidence names; see the certificates checks.",
        doc: "https://learn.microsoft.com/azure/azure-sql/managed-instance/managed-instance-link-best-practices",
    },
];

/// Entries that explain an error number and/or text.
pub fn explain(number: Option<i64>, text: &str) -> Vec<&'static Entry> {
    let lower = text.to_ascii_lowercase();
    ENTRIES
        .iter()
        .filter(|e| {
            e.number.is_some_and(|n| {
                Some(n) == number || lower.contains(&format!("error: {n}")) || lower.contains(&format!("msg {n}"))
            }) || e.pattern.is_some_and(|p| lower.contains(&p.to_ascii_lowercase()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry answers to its number or its text, and only its cause checks exist.
    #[test]
    fn every_entry_matches_and_names_real_checks() {
        for e in ENTRIES {
            let text = e.pattern.unwrap_or("");
            let hits = explain(e.number, text);
            assert!(hits.iter().any(|h| h.id == e.id), "{} does not match itself", e.id);
            for (_, ids) in e.causes {
                for id in *ids {
                    assert!(crate::checks::CHECKS.iter().any(|c| c.id == *id), "{} names unknown check {id}", e.id);
                }
            }
        }
        let required = [
            "41962",
            "41973",
            "41974",
            "41976",
            "41977",
            "41986",
            "47521",
            "1408",
            "1801",
            "1412",
            "35201",
            "35202",
            "35204",
            "35206",
            "35207",
            "os-10054",
            "os-10060",
            "os-10061",
            "encryption-mismatch",
            "certificate-handshake",
        ];
        for id in required {
            assert!(ENTRIES.iter().any(|e| e.id == id), "missing {id}");
        }
    }

    #[test]
    fn os_errors_inside_descriptions() {
        let d = "Connection attempt failed with error: '10060(A connection attempt failed because the connected party did not properly respond after a period of time.)'.";
        let ids: Vec<_> = explain(Some(35207), d).iter().map(|e| e.id).collect();
        assert_eq!(ids, ["35207", "os-10060"]);
        let log = "Database Mirroring login attempt failed with error: 'Connection handshake failed. There is no compatible encryption algorithm. State 22.'";
        assert_eq!(explain(None, log)[0].id, "encryption-mismatch");
    }
}
