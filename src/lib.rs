//! milink: pre-flight checks and diagnosis for the SQL Server ↔ Azure SQL
//! Managed Instance link.

pub mod cli;
pub mod lab;
pub mod tds;
