//! `--on-change CMD`: runs the command (through `sh -c`) with the event as JSON
//! on stdin, for mail, Teams or PagerDuty scripts. The runs happen one after
//! another, in the order of the events, beside the polling and never in its
//! way; each has a time limit, and a queue that overflows drops events (counted).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::events::Event;

pub struct Notifier {
    queue: mpsc::Sender<String>,
    worker: tokio::task::JoinHandle<()>,
}

/// Events waiting for their run before new ones are dropped.
const QUEUE: usize = 1024;

impl Notifier {
    pub fn new(command: String, limit: Duration) -> Notifier {
        let (queue, mut rx) = mpsc::channel::<String>(QUEUE);
        let worker = tokio::spawn(async move {
            while let Some(json) = rx.recv().await {
                run(&command, &json, limit).await;
            }
        });
        Notifier { queue, worker }
    }

    /// Queues a run for `event`; false when the queue is full.
    pub fn send(&self, event: &Event) -> bool {
        self.queue.try_send(serde_json::to_string(event).unwrap_or_default()).is_ok()
    }

    /// Lets the queued runs finish, for at most `wait`.
    pub async fn finish(self, wait: Duration) {
        drop(self.queue);
        let _ = tokio::time::timeout(wait, self.worker).await;
    }
}

async fn run(command: &str, json: &str, limit: Duration) {
    let child = tokio::process::Command::new("sh")
        .args(["-c", command])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "--on-change did not start");
            return;
        }
    };
    let run = async {
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(json.as_bytes()).await;
            let _ = stdin.write_all(b"\n").await;
        }
        child.wait().await
    };
    match tokio::time::timeout(limit, run).await {
        Ok(Ok(status)) if !status.success() => tracing::warn!(%status, "--on-change failed"),
        Ok(_) => {}
        Err(_) => {
            tracing::warn!(limit = ?limit, "--on-change ran too long and was stopped");
            let _ = child.kill().await;
        }
    }
}
