//! Time limits: `--timeout` bounds one network step, `--deadline` the whole
//! command. Every step waits at most what is left of the deadline, so a server
//! that answers each query just in time cannot make a run take the sum.

use std::time::{Duration, Instant};

/// One step's timeout under an optional deadline for the whole run.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub timeout: Duration,
    pub until: Option<Instant>,
}

impl Limit {
    /// A step timeout with no deadline over it.
    pub fn new(timeout: Duration) -> Limit {
        Limit { timeout, until: None }
    }

    /// How long the next step may take: its timeout, or less when the deadline is nearer.
    pub fn step(&self) -> Duration {
        match self.until {
            Some(end) => self.timeout.min(end.saturating_duration_since(Instant::now())),
            None => self.timeout,
        }
    }

    pub fn passed(&self) -> bool {
        self.until.is_some_and(|end| Instant::now() >= end)
    }

    /// Why a step that ran out of time stopped: its own timeout or the deadline.
    pub fn why(&self, what: &str) -> String {
        if self.passed() {
            format!("{what}: the run's deadline was reached")
        } else {
            format!("{what}: no answer within {}", humantime::format_duration(self.timeout))
        }
    }
}

/// When `--deadline` is not given: enough for a slow network, and for the
/// Agent-job probes when they are asked for (each side runs up to two, one after the other).
pub fn default_for(timeout: Duration, job_wait: Option<Duration>) -> Duration {
    let base = Duration::from_secs(30).max(timeout.saturating_mul(4));
    match job_wait {
        Some(w) => base.saturating_add(w.saturating_mul(2)),
        None => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_gets_what_is_left_of_the_deadline() {
        let l = Limit { timeout: Duration::from_secs(5), until: Some(Instant::now() + Duration::from_millis(200)) };
        assert!(l.step() <= Duration::from_millis(200));
        assert!(!l.passed());
        let gone = Limit { timeout: Duration::from_secs(5), until: Some(Instant::now()) };
        assert_eq!(gone.step(), Duration::ZERO);
        assert!(gone.passed());
        assert!(gone.why("query").contains("deadline"));
        assert_eq!(Limit::new(Duration::from_secs(2)).step(), Duration::from_secs(2));
        assert!(Limit::new(Duration::from_secs(2)).why("login").contains("2s"));
    }

    #[test]
    fn the_default_deadline_leaves_room_for_job_probes() {
        assert_eq!(default_for(Duration::from_secs(2), None), Duration::from_secs(30));
        assert_eq!(default_for(Duration::from_secs(20), None), Duration::from_secs(80));
        assert_eq!(default_for(Duration::from_secs(2), Some(Duration::from_secs(90))), Duration::from_secs(210));
    }
}
