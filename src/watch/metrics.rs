//! Prometheus metrics of the last poll, in the text exposition format, served
//! over plain HTTP at `/metrics` while watching.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::poll::{SideState, Snapshot};
use crate::report::prometheus::{family, label};

/// Counters that outlive one poll.
#[derive(Default)]
pub struct Counters {
    pub polls: u64,
    /// Per side: polls where it could not be asked.
    pub poll_errors: [u64; 2],
    pub events: u64,
    /// `--on-change` runs skipped because too many were still running.
    pub on_change_skipped: u64,
}

fn gauge(out: &mut String, name: &str, help: &str, samples: &[(String, f64)]) {
    family(out, name, "gauge", help, samples)
}

fn counter(out: &mut String, name: &str, help: &str, samples: &[(String, f64)]) {
    family(out, name, "counter", help, samples)
}

pub fn render(s: &Snapshot, c: &Counters) -> String {
    let mut out = String::new();
    let per_side = |f: &dyn Fn(&SideState) -> Option<f64>| -> Vec<(String, f64)> {
        s.sides().iter().filter_map(|(side, st)| Some((format!("side=\"{side}\""), f(st)?))).collect()
    };
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    gauge(
        &mut out,
        "milink_side_reachable",
        "1 when the side answered the last poll.",
        &per_side(&|st| Some(flag(st.reachable))),
    );
    let connected = per_side(&|st| st.worst.connected.as_ref().map(|c| flag(c == "CONNECTED")));
    gauge(
        &mut out,
        "milink_link_connected",
        "1 when every replica of the distributed AG is CONNECTED as this side sees it.",
        &connected,
    );
    let health = per_side(&|st| {
        st.worst.health.as_ref().map(|h| match h.as_str() {
            "HEALTHY" => 2.0,
            "PARTIALLY_HEALTHY" => 1.0,
            _ => 0.0,
        })
    });
    gauge(&mut out, "milink_synchronization_health", "2 HEALTHY, 1 PARTIALLY_HEALTHY, 0 NOT_HEALTHY.", &health);
    let reachable = |st: &SideState, v: f64| st.reachable.then_some(v);
    gauge(
        &mut out,
        "milink_log_send_queue_kb",
        "Largest log send queue of the link's databases, KB.",
        &per_side(&|st| reachable(st, st.worst.send_queue_kb as f64)),
    );
    gauge(
        &mut out,
        "milink_redo_queue_kb",
        "Largest redo queue of the link's databases, KB.",
        &per_side(&|st| reachable(st, st.worst.redo_queue_kb as f64)),
    );
    gauge(
        &mut out,
        "milink_secondary_lag_seconds",
        "How far the secondary is behind, seconds.",
        &per_side(&|st| reachable(st, st.worst.lag_s as f64)),
    );
    let hardened = per_side(&|st| st.worst.since_hardened_s.map(|v| v as f64));
    gauge(
        &mut out,
        "milink_seconds_since_last_hardened",
        "Seconds since the log was last hardened on this side.",
        &hardened,
    );
    let error = per_side(&|st| reachable(st, st.worst.last_error.as_ref().map(|e| e.number as f64).unwrap_or(0.0)));
    gauge(
        &mut out,
        "milink_last_connect_error_number",
        "last_connect_error_number of the distributed AG (0: none).",
        &error,
    );
    let certs: Vec<(String, f64)> = s
        .sides()
        .iter()
        .flat_map(|(side, st)| {
            st.certificates.iter().map(move |(n, t)| (format!("side=\"{side}\",name=\"{}\"", label(n)), *t as f64))
        })
        .collect();
    gauge(&mut out, "milink_cert_not_after_timestamp_seconds", "A certificate's expiry, Unix seconds.", &certs);
    let logs: Vec<(String, f64)> = s
        .sql_server
        .log_used
        .iter()
        .map(|(db, u)| (format!("side=\"sql_server\",database=\"{}\"", label(db)), *u))
        .collect();
    gauge(&mut out, "milink_log_used_percent", "Log space used by a link database on SQL Server.", &logs);
    gauge(
        &mut out,
        "milink_poll_duration_seconds",
        "How long the last poll of the side took.",
        &per_side(&|st| Some(st.poll_ms / 1e3)),
    );
    let errors: Vec<(String, f64)> = ["sql_server", "managed_instance"]
        .iter()
        .zip(c.poll_errors)
        .map(|(side, n)| (format!("side=\"{side}\""), n as f64))
        .collect();
    counter(&mut out, "milink_poll_errors_total", "Polls where the side could not be asked.", &errors);
    counter(&mut out, "milink_polls_total", "Polls since the watch started.", &[(String::new(), c.polls as f64)]);
    counter(&mut out, "milink_events_total", "Events since the watch started.", &[(String::new(), c.events as f64)]);
    counter(
        &mut out,
        "milink_on_change_skipped_total",
        "--on-change runs skipped while earlier ones still ran.",
        &[(String::new(), c.on_change_skipped as f64)],
    );
    out
}

/// Serves `page` at `/metrics` until the task is dropped; each request gets
/// two seconds to arrive.
pub async fn serve(listener: TcpListener, page: Arc<Mutex<String>>) {
    loop {
        let Ok((mut conn, _)) = listener.accept().await else { continue };
        let page = page.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut got = 0;
            let read = async {
                while got < buf.len() {
                    let n = conn.read(&mut buf[got..]).await?;
                    if n == 0 {
                        break;
                    }
                    got += n;
                    if buf[..got].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                Ok::<_, std::io::Error>(())
            };
            if tokio::time::timeout(Duration::from_secs(2), read).await.is_err() {
                return;
            }
            let head = String::from_utf8_lossy(&buf[..got]);
            let path = head.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = if path == "/metrics" || path.starts_with("/metrics?") {
                ("200 OK", page.lock().unwrap_or_else(|p| p.into_inner()).clone())
            } else {
                ("404 Not Found", "see /metrics\n".to_string())
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.write_all(reply.as_bytes())).await;
        });
    }
}
