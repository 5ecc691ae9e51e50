//! Many queries in one round trip: each query runs as dynamic SQL inside its
//! own TRY/CATCH, behind a marker result set that says which query follows,
//! so one failing view costs only its own answer (its error number and text
//! come back as a row) and the columns of each stay apart. What arrives before
//! the step's timeout is kept; what does not is a timeout of its own.

use tiberius::QueryItem;

use super::sql::{Column, MAX_BYTES, MAX_ROWS, Record, Session, SqlFailure, Table, record, size};
use crate::tsql::nstring;

const MARK: &str = "milink_query";
const ERROR_NUMBER: &str = "milink_error_number";
const ERROR_MESSAGE: &str = "milink_error_message";
/// How an answer without end is worded (`SqlFailure::ended_batch` knows it).
const ENDLESS: &str = "the answer goes on past";

impl SqlFailure {
    /// Whether this broke the whole batch (the step's time ran out, or rows
    /// came without end): the queries after it were not answered either.
    pub fn ended_batch(&self) -> bool {
        self.timed_out || self.message.starts_with(ENDLESS)
    }
}

/// The batch for these queries.
pub fn text(queries: &[&str]) -> String {
    let mut s = String::from("SET NOCOUNT ON;\n");
    for (i, q) in queries.iter().enumerate() {
        s.push_str(&format!(
            "SELECT {i} AS [{MARK}];\nBEGIN TRY EXEC ({}); END TRY BEGIN CATCH SELECT ERROR_NUMBER() AS [{ERROR_NUMBER}], ERROR_MESSAGE() AS [{ERROR_MESSAGE}]; END CATCH;\n",
            nstring(q)
        ));
    }
    s
}

/// Where the rows of the result set being read go.
#[derive(Clone, Copy, PartialEq)]
enum Into {
    Marker,
    /// The open query's rows (or, `Error`, its caught error).
    Query,
    Error,
    /// A query's second and later result sets, as `Session::table` ignores them.
    Nowhere,
}

/// A query whose marker came: what it answered so far, and whether its first
/// result set came. It is answered once the next marker or the batch's end comes.
struct Open {
    index: usize,
    answer: Option<Result<Table, SqlFailure>>,
    first_set: bool,
}

/// The state of a batch being read.
struct Reading {
    out: Vec<Option<Result<Table, SqlFailure>>>,
    open: Option<Open>,
    into: Into,
    rows: usize,
    bytes: usize,
    /// The server sent rows without end: the unanswered queries say so.
    endless: bool,
}

impl Reading {
    /// The open query is answered (a query without a result set answers an empty table).
    fn close(&mut self) {
        if let Some(o) = self.open.take() {
            self.out[o.index] = Some(o.answer.unwrap_or_else(|| Ok(Table::default())));
        }
    }

    fn metadata(&mut self, columns: &[tiberius::Column]) {
        let names: Vec<&str> = columns.iter().map(|c| c.name()).collect();
        if names == [MARK] {
            self.into = Into::Marker;
            return;
        }
        self.into = match self.open.as_mut() {
            Some(o) if !o.first_set => {
                o.first_set = true;
                if names == [ERROR_NUMBER, ERROR_MESSAGE] {
                    Into::Error
                } else {
                    let columns = columns.iter().map(|c| Column::of(c, None)).collect();
                    o.answer = Some(Ok(Table { columns, rows: Vec::new() }));
                    Into::Query
                }
            }
            _ => Into::Nowhere,
        };
    }

    /// False when the answer goes on without end: reading stops.
    fn row(&mut self, row: tiberius::Row) -> bool {
        let r = record(&row);
        self.rows += 1;
        self.bytes += r.iter().map(|(k, v)| k.len() + size(v)).sum::<usize>();
        if self.rows > MAX_ROWS || self.bytes > MAX_BYTES {
            self.endless = true;
            return false;
        }
        match (self.into, self.open.as_mut()) {
            (Into::Marker, _) => {
                self.close();
                if let Some(i) = int(&row, 0).and_then(|i| usize::try_from(i).ok()).filter(|i| *i < self.out.len()) {
                    self.open = Some(Open { index: i, answer: None, first_set: false });
                }
            }
            (Into::Error, Some(o)) => {
                let code = int(&row, 0).and_then(|n| u32::try_from(n).ok());
                let message = row.try_get::<&str, _>(1).ok().flatten().unwrap_or_default().to_string();
                o.answer = Some(Err(SqlFailure { code, message, timed_out: false, routed_to: None }));
            }
            (Into::Query, Some(Open { answer: Some(Ok(t)), .. })) => {
                if t.rows.is_empty() {
                    // The first row's values tell an `intn` from a `bigintn`.
                    t.columns =
                        row.columns().iter().zip(row.cells()).map(|(c, (_, d))| Column::of(c, Some(d))).collect();
                }
                t.rows.push(r);
            }
            _ => {}
        }
        true
    }
}

/// An integer cell of any width.
fn int(row: &tiberius::Row, i: usize) -> Option<i64> {
    use tiberius::ColumnData as D;
    match row.cells().nth(i)?.1 {
        D::U8(v) => v.map(i64::from),
        D::I16(v) => v.map(i64::from),
        D::I32(v) => v.map(i64::from),
        D::I64(v) => *v,
        _ => None,
    }
}

impl Session {
    /// Runs the queries as one batch; each gets its own answer, in order.
    pub async fn batch(&mut self, queries: &[&str]) -> Vec<Result<Table, SqlFailure>> {
        use futures_util::TryStreamExt;
        let mut r = Reading {
            out: vec![None; queries.len()],
            open: None,
            into: Into::Nowhere,
            rows: 0,
            bytes: 0,
            endless: false,
        };
        let deadline = tokio::time::Instant::now() + self.limit.step();
        let limit = self.limit;
        let mut failed: Option<SqlFailure> = None;
        let mut timed_out = false;
        let sql = text(queries);
        match tokio::time::timeout_at(deadline, self.client.simple_query(sql)).await {
            Err(_) => timed_out = true,
            Ok(Err(e)) => failed = Some(SqlFailure::from(e)),
            Ok(Ok(mut stream)) => loop {
                match tokio::time::timeout_at(deadline, stream.try_next()).await {
                    Err(_) => {
                        timed_out = true;
                        break;
                    }
                    Ok(Err(e)) => {
                        failed = Some(SqlFailure::from(e));
                        break;
                    }
                    Ok(Ok(None)) => {
                        r.close();
                        break;
                    }
                    Ok(Ok(Some(QueryItem::Metadata(m)))) => r.metadata(m.columns()),
                    Ok(Ok(Some(QueryItem::Row(row)))) => {
                        if !r.row(row) {
                            break;
                        }
                    }
                }
            },
        }
        // The query under way when the batch broke gets why; the ones after it, too.
        let endless = r.endless.then(|| SqlFailure {
            code: None,
            message: format!("{ENDLESS} {} rows ({} bytes); milink stopped reading", r.rows, r.bytes),
            timed_out: false,
            routed_to: None,
        });
        r.out
            .into_iter()
            .map(|o| match o {
                Some(x) => x,
                None if endless.is_some() => Err(endless.clone().expect("set")),
                None if timed_out => Err(SqlFailure::timeout("query", &limit)),
                None => Err(failed.clone().unwrap_or(SqlFailure {
                    code: None,
                    message: "the batch ended before this query was answered".into(),
                    timed_out: false,
                    routed_to: None,
                })),
            })
            .collect()
    }
}

/// A batch's answers, taken in the order its queries were given.
pub struct Answers(std::vec::IntoIter<Result<Table, SqlFailure>>);

impl Answers {
    /// The next query's rows, or why it has none.
    pub fn rows(&mut self) -> Result<Vec<Record>, SqlFailure> {
        let missing = || SqlFailure {
            code: None,
            message: "the batch had no answer for this query".into(),
            timed_out: false,
            routed_to: None,
        };
        self.0.next().unwrap_or_else(|| Err(missing())).map(|t| t.rows)
    }
}

impl Session {
    /// The queries in one round trip, their answers to be taken in order.
    pub async fn answers(&mut self, queries: &[&str]) -> Answers {
        Answers(self.batch(queries).await.into_iter())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_query_is_quoted_in_its_own_try_block() {
        let t = super::text(&["SELECT 1 AS a", "SELECT N'it''s' AS b"]);
        assert!(
            t.starts_with("SET NOCOUNT ON;\nSELECT 0 AS [milink_query];\nBEGIN TRY EXEC (N'SELECT 1 AS a'); END TRY")
        );
        assert!(t.contains("EXEC (N'SELECT N''it''''s'' AS b')"), "{t}");
        assert_eq!(t.matches("BEGIN CATCH").count(), 2);
    }
}
