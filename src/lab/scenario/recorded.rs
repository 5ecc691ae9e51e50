//! A support bundle's recorded answers, as a scenario holds them
//! (`[[sql_server.recorded]]`, `login.refuse`); `lab::sql::replay` gives them back.

use serde::{Deserialize, Serialize};

/// One statement as the bundle recorded it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Recorded {
    pub query: String,
    /// `[name, type]` in the server's order (`["expiry_date", "datetime"]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<[String; 2]>,
    /// One table per row; a column it leaves out is NULL (TOML has no null).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<toml::Table>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RecordedError>,
    /// What the client got instead of an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<AnswerFault>,
}

/// A server error: number and text as SQL Server sent them.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedError {
    pub number: i32,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerFault {
    /// No answer at all: the client's timeout ends it.
    Silence,
    /// Rows without end.
    Endless,
    /// The server closes the connection.
    HangUp,
}
