//! milink: pre-flight checks and diagnosis for the SQL Server ↔ Azure SQL
//! Managed Instance link.

pub mod audit;
pub mod azure;
pub mod bundle;
pub mod checks;
pub mod cli;
pub mod deadline;
pub mod diagnose;
pub mod input;
pub mod lab;
pub mod link;
pub mod probe;
pub mod profile;
pub mod report;
pub mod tds;
pub mod tsql;
pub mod update_policy;
pub mod watch;
