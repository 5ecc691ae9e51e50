//! The root causes `diagnose` knows, one row each, beside the knowledge base
//! of errors (`kb.rs`): what a cause needs from the findings, the link's
//! errors and its state (routes, the first that holds decides the weight),
//! the summary, the findings it quotes, the fix and its doc. A route the
//! report's own findings confirm weighs more than one an error alone matches.
//! A new cause is a new row here and a scenario that names it.

use super::judge::{Fix, LinkIs, Route, Rule, Weight, When};

const TROUBLESHOOT: &str =
    "https://learn.microsoft.com/azure/azure-sql/managed-instance/managed-instance-link-troubleshoot-how-to";
const PREP: &str = "https://learn.microsoft.com/azure/azure-sql/managed-instance/managed-instance-link-preparation";
const SCRIPTS: &str =
    "https://learn.microsoft.com/azure/azure-sql/managed-instance/managed-instance-link-configure-how-to-scripts";
const BEST: &str = "https://learn.microsoft.com/azure/azure-sql/managed-instance/managed-instance-link-best-practices";

use LinkIs::{Connected, Disconnected};
use When::{Error, Fails, Has, Link, Negative, NotFailing, OnlyErrors, Passes, Skipped, Warns};

const fn route(all: &'static [When], weight: Weight) -> Route {
    Route { all, any: &[], weight, missing: None }
}

/// Connection timeouts on the link, as SQL Server and the instance report them.
const TIMEOUTS: &[When] = &[Error("35201"), Error("35206"), Error("41962"), Error("41986"), Error("os-10060")];
/// The same, as knowledge-base ids, with the wrapper errors around them.
const TIMEOUT_IDS: &[&str] = &["35201", "35206", "41962", "41986", "os-10060", "35207", "35202"];

const ENDPOINT_UP: [When; 2] = [NotFailing("endpoint-sql-started"), NotFailing("endpoint-sql-present")];

pub static RULES: &[Rule] = &[
    Rule {
        id: "split-brain",
        summary: "Both sides are PRIMARY of the distributed availability group (split brain, after a forced failover).",
        routes: &[route(&[Fails("link-split-brain")], Weight::Certain)],
        quote: &["link-split-brain"],
        fix: Fix {
            from: None,
            text: "Back up the old primary, then make it secondary: ALTER AVAILABILITY GROUP [<DAG>] SET (ROLE = SECONDARY) (milink link reconcile --primary <the side to keep> --backup-to <folder or URL> does both, then waits until the link is CONNECTED).",
        },
        doc: TROUBLESHOOT,
    },
    Rule {
        id: "sql-endpoint-cert-expired",
        summary: "SQL Server's mirroring endpoint certificate has expired, so the managed instance no longer accepts its handshake.",
        routes: &[route(&[Negative("cert-sql-endpoint-expiry", "days_left")], Weight::Decisive)],
        quote: &["cert-sql-endpoint-expiry"],
        fix: Fix { from: Some("cert-sql-endpoint-expiry"), text: "Rotate SQL Server's endpoint certificate." },
        doc: BEST,
    },
    Rule {
        id: "sql-endpoint-down",
        summary: "SQL Server's mirroring endpoint is missing or not started.",
        routes: &[
            route(&[Fails("endpoint-sql-started")], Weight::Decisive),
            route(&[Fails("endpoint-sql-present")], Weight::Decisive),
            route(&[Error("35204")], Weight::Likely),
        ],
        quote: &["endpoint-sql-present", "endpoint-sql-started"],
        fix: Fix { from: Some("endpoint-sql-started"), text: "ALTER ENDPOINT [<endpoint>] STATE = STARTED;" },
        doc: SCRIPTS,
    },
    Rule {
        id: "mi-database-exists",
        summary: "Seeding failed because the managed instance already has a database of the same name (1801).",
        routes: &[
            route(&[Error("1801"), Fails("database-mi-name-free")], Weight::Decisive),
            route(&[Error("1801")], Weight::Likely),
        ],
        quote: &["database-mi-name-free"],
        fix: Fix {
            from: None,
            text: "Drop or rename the managed instance's database of that name once you know nothing in it is needed, then drop and re-create the link (milink link remove, then apply).",
        },
        doc: TROUBLESHOOT,
    },
    Rule {
        id: "seeding-log-truncated",
        summary: "A log backup truncated the log while the link was seeding (1408/1412): the seeded copy cannot catch up.",
        routes: &[Route { all: &[], any: &[Error("1408"), Error("1412")], weight: Weight::Likely, missing: None }],
        quote: &["database-log-backup"],
        fix: Fix {
            from: None,
            text: "Drop and re-create the link, and pause log backups on SQL Server until seeding completes; or, for the seeding, turn on trace flag 12381 (DBCC TRACEON (12381, -1)), which keeps the log from truncating (which builds honour it is UNCONFIRMED), and turn it off afterwards.",
        },
        doc: TROUBLESHOOT,
    },
    Rule {
        id: "seeding-stalled",
        summary: "Initial seeding keeps starting over, or is too slow to finish before link creation is cancelled (after 6 days of seeding).",
        routes: &[
            route(&[Fails("link-seeding"), Has("link-seeding", "eta_s")], Weight::Strong),
            route(&[Warns("link-seeding"), Has("link-seeding", "eta_s")], Weight::Supported),
        ],
        quote: &["link-seeding"],
        fix: Fix { from: Some("link-seeding"), text: "Keep the network and both sides up until seeding completes." },
        doc: TROUBLESHOOT,
    },
    Rule {
        id: "seeding-in-progress",
        summary: "Initial seeding is still running: the link reads NOT_HEALTHY until it completes.",
        routes: &[route(
            &[Has("link-seeding", "eta_s"), NotFailing("link-seeding"), Link(Connected)],
            Weight::Plausible,
        )],
        quote: &["link-seeding"],
        fix: Fix { from: None, text: "Nothing to fix yet: wait for seeding to finish (milink watch follows it)." },
        doc: TROUBLESHOOT,
    },
    Rule {
        id: "sql-inbound-5022-blocked",
        summary: "SQL Server's inbound TCP 5022 is blocked for the managed instance: the managed instance cannot reach SQL Server's mirroring endpoint, while SQL Server reaches the managed instance.",
        routes: &[
            route(
                &[Fails("network-mi-to-sql-5022"), Passes("network-sql-to-mi-5022"), ENDPOINT_UP[0], ENDPOINT_UP[1]],
                Weight::Firm,
            ),
            Route {
                all: &[Fails("network-mi-to-sql-5022"), ENDPOINT_UP[0], ENDPOINT_UP[1]],
                any: &[],
                weight: Weight::Supported,
                missing: Some("SQL Server → MI 5022 untested or failing too"),
            },
            // A missing or stopped endpoint also makes the probe fail: it explains it better.
            route(&[Fails("network-mi-to-sql-5022")], Weight::Weak),
            Route {
                all: &[Skipped("network-mi-to-sql-5022"), Link(Disconnected)],
                any: &[Error("35201"), Error("os-10060"), Error("41986")],
                weight: Weight::TextOnly,
                missing: Some("MI → SQL Server 5022 was not tested: rerun with --job-probes"),
            },
        ],
        quote: &["network-mi-to-sql-5022", "network-sql-to-mi-5022"],
        fix: Fix {
            from: None,
            text: "Open inbound TCP 5022 on SQL Server (host firewall and every firewall between) from the whole managed instance subnet.",
        },
        doc: PREP,
    },
    Rule {
        id: "mi-hadr-port-blocked",
        summary: "SQL Server reaches the managed instance's 5022 but not its current node's HADR port: the link is redirected there and times out. The node and its port change after every failover or maintenance of the instance.",
        routes: &[
            Route {
                all: &[Fails("network-sql-to-mi-hadr"), Passes("network-sql-to-mi-5022")],
                any: TIMEOUTS,
                weight: Weight::Firm,
                missing: None,
            },
            route(&[Fails("network-sql-to-mi-hadr"), Passes("network-sql-to-mi-5022")], Weight::Strong),
        ],
        quote: &["network-sql-to-mi-hadr", "network-sql-to-mi-5022"],
        fix: Fix {
            from: None,
            text: "Open outbound TCP 11000-11999 from SQL Server to the whole managed instance subnet (host firewall and every firewall between), and inbound on the instance's NSG: not the one node port, which moves.",
        },
        doc: PREP,
    },
    Rule {
        id: "protocol-inspection",
        summary: "TCP 5022 is open both ways (the servers' own probes connect), yet the link times out: a firewall that inspects traffic lets TCP through and drops the mirroring protocol. A plain TCP test cannot see this.",
        routes: &[Route {
            all: &[
                Passes("network-mi-to-sql-5022"),
                Passes("network-sql-to-mi-5022"),
                NotFailing("network-sql-to-mi-hadr"),
                Link(Disconnected),
                OnlyErrors(TIMEOUT_IDS),
            ],
            any: TIMEOUTS,
            weight: Weight::Confirmed,
            missing: None,
        }],
        quote: &["network-mi-to-sql-5022", "network-sql-to-mi-5022", "network-sql-to-mi-hadr"],
        fix: Fix {
            from: None,
            text: "Allow the database mirroring traffic on 5022 and 11000-11999 between SQL Server and the managed instance subnet, or exempt it from the firewall's inspection (application control, IPS, SSL inspection).",
        },
        doc: PREP,
    },
    Rule {
        id: "mi-inbound-5022-blocked",
        summary: "The managed instance's 5022 is not reachable from SQL Server (NSG or outbound firewall).",
        routes: &[
            route(&[Fails("network-sql-to-mi-5022")], Weight::Likely),
            route(&[Link(Disconnected), Fails("network-mi-5022")], Weight::Likely),
        ],
        quote: &["network-sql-to-mi-5022", "network-mi-5022"],
        fix: Fix {
            from: None,
            text: "Allow inbound 5022 and 11000-11999 from SQL Server's IP in the MI subnet NSG, and outbound on SQL Server's side.",
        },
        doc: PREP,
    },
    Rule {
        id: "sql-endpoint-windows-auth",
        summary: "SQL Server's mirroring endpoint authenticates with Windows only: the managed instance authenticates with certificates, so the handshake fails.",
        routes: &[
            Route {
                all: &[Fails("endpoint-sql-auth")],
                any: &[
                    Error("auth-mismatch"),
                    Error("connect-permission"),
                    Error("certificate-handshake"),
                    Error("35207"),
                ],
                weight: Weight::Confirmed,
                missing: None,
            },
            route(&[Fails("endpoint-sql-auth"), Link(Disconnected)], Weight::Likely),
        ],
        quote: &["endpoint-sql-auth", "cert-sql-endpoint"],
        fix: Fix { from: Some("endpoint-sql-auth"), text: "Give the endpoint certificate authentication." },
        doc: SCRIPTS,
    },
    Rule {
        id: "mi-half-missing",
        summary: "The instance's half of the link is gone: ARM has no DAG resource of that name while SQL Server's half remains, DISCONNECTED (deleted on the instance's side, or never created).",
        routes: &[route(&[Has("link-names-match-arm", "missing_on_instance"), Link(Disconnected)], Weight::Confirmed)],
        quote: &["link-names-match-arm"],
        fix: Fix { from: Some("link-names-match-arm"), text: "Create the instance's half again (milink link apply)." },
        doc: SCRIPTS,
    },
    Rule {
        id: "link-definition-wrong",
        summary: "The link's two halves do not agree: SQL Server's distributed AG names the instance wrongly (its LISTENER_URL lacks ;Server=[<instance name>], or its AG names differ from the instance's DAG resource), so the group does not answer (41976).",
        routes: &[
            Route {
                all: &[Error("41976")],
                any: &[Fails("link-listener-url"), Fails("link-names-match-arm")],
                weight: Weight::Confirmed,
                missing: None,
            },
            Route {
                all: &[],
                any: &[Fails("link-listener-url"), Fails("link-names-match-arm")],
                weight: Weight::Likely,
                missing: None,
            },
        ],
        quote: &["link-listener-url", "link-names-match-arm"],
        fix: Fix {
            from: Some("link-listener-url"),
            text: "Create the half whose names are wrong again with the other half's names (milink link remove, then plan and apply).",
        },
        doc: SCRIPTS,
    },
    Rule {
        id: "sql-without-link-update",
        summary: "SQL Server lacks the update the link needs (2016/2017: the Azure Connect pack; its procedures are missing), so it cannot answer the instance's redirect (41976).",
        routes: &[
            route(&[Fails("instance-sql-version"), Error("41976")], Weight::Confirmed),
            route(&[Fails("instance-sql-version"), Link(Disconnected)], Weight::Supported),
        ],
        quote: &["instance-sql-version"],
        fix: Fix { from: Some("instance-sql-version"), text: "Install the update the support matrix names." },
        doc: PREP,
    },
    Rule {
        id: "encryption-mismatch",
        summary: "The endpoints share no encryption algorithm: the link needs AES.",
        routes: &[
            route(&[Fails("endpoint-sql-encryption")], Weight::Strong),
            route(&[Error("encryption-mismatch")], Weight::Likely),
        ],
        quote: &["endpoint-sql-encryption"],
        fix: Fix {
            from: None,
            text: "ALTER ENDPOINT [<endpoint>] FOR DATABASE_MIRRORING (ENCRYPTION = REQUIRED ALGORITHM AES);",
        },
        doc: SCRIPTS,
    },
    Rule {
        id: "mi-cert-not-imported",
        summary: "SQL Server does not hold the managed instance's current certificate under its FQDN.",
        routes: &[
            route(&[Fails("cert-mi-imported"), Error("41974")], Weight::Confirmed),
            route(&[Fails("cert-mi-imported")], Weight::Likely),
            route(&[Error("41974")], Weight::Supported),
        ],
        quote: &["cert-mi-imported"],
        fix: Fix {
            from: Some("cert-mi-imported"),
            text: "Import it: CREATE CERTIFICATE [<MI FQDN>] FROM BINARY = <sp_get_endpoint_certificate 4 on the MI>.",
        },
        doc: SCRIPTS,
    },
    Rule {
        id: "sql-cert-not-on-mi",
        summary: "The managed instance does not trust SQL Server's endpoint certificate.",
        routes: &[
            route(&[Fails("cert-sql-trusted-on-mi"), Error("41973")], Weight::Confirmed),
            route(&[Fails("cert-sql-trusted-on-mi")], Weight::Likely),
            route(&[Error("41973")], Weight::Supported),
        ],
        quote: &["cert-sql-trusted-on-mi"],
        fix: Fix {
            from: Some("cert-sql-trusted-on-mi"),
            text: "Upload it with New-AzSqlInstanceServerTrustCertificate.",
        },
        doc: SCRIPTS,
    },
    Rule {
        id: "link-far-behind",
        summary: "The link is connected but far behind: the secondary lags by an hour or more, or a queue holds 10 GB or more.",
        routes: &[Route {
            all: &[Fails("link-lag"), Link(Connected)],
            any: &[],
            weight: Weight::Plausible,
            missing: Some("whether the queue grows or drains over time (milink watch)"),
        }],
        quote: &["link-lag"],
        fix: Fix { from: Some("link-lag"), text: "Find what holds the link back: bandwidth, or redo on the instance." },
        doc: BEST,
    },
    Rule {
        id: "log-full",
        summary: "The database's log is nearly full: replication stops at 100%.",
        routes: &[route(&[Fails("database-log-space")], Weight::Plausible)],
        quote: &["database-log-space"],
        fix: Fix { from: Some("database-log-space"), text: "Free log space: back up the log, or grow the log file." },
        doc: BEST,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_unique_name_real_checks_and_an_error_alone_ranks_below_confirmed_evidence() {
        let mut ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), RULES.len());
        let check = |id: &str| crate::checks::CHECKS.iter().any(|c| c.id == id);
        let kb = |id: &str| super::super::kb::ENTRIES.iter().any(|e| e.id == id);
        for r in RULES {
            for id in r.quote.iter().chain(r.fix.from.iter()) {
                assert!(check(id), "{}: unknown check {id}", r.id);
            }
            for route in r.routes {
                for w in route.all.iter().chain(route.any) {
                    match w {
                        Fails(id)
                        | Passes(id)
                        | Warns(id)
                        | Skipped(id)
                        | NotFailing(id)
                        | Negative(id, _)
                        | Has(id, _) => {
                            assert!(check(id), "{}: unknown check {id}", r.id)
                        }
                        Error(k) => assert!(kb(k), "{}: unknown knowledge-base entry {k}", r.id),
                        OnlyErrors(ks) => {
                            for k in *ks {
                                assert!(kb(k), "{}: unknown knowledge-base entry {k}", r.id)
                            }
                        }
                        Link(_) => {}
                    }
                }
                if Rule::error_only(route) {
                    assert!(route.weight < Weight::Confirmed, "{}: an error alone weighs {:?}", r.id, route.weight);
                }
            }
        }
    }
}
