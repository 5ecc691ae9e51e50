//! An ARM client for the managed instance's resources: requests with bounded
//! retries (throttling, server errors), ARM's error bodies as errors with their
//! code, and long-running operations polled to their end.

use std::time::{Duration, Instant};

use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::auth::{ARM_SCOPE, AuthError, Tokens};
use crate::profile::Profile;

/// api-versions milink speaks: the new DAG schema first (roles, per-database
/// health), the old one when the instance refuses it (mi-link-facts §4).
pub const NEW_API: &str = "2025-01-01";
pub const OLD_API: &str = "2021-11-01";
/// The preview that knows `linkMode` and the multi-database link's operations:
/// used only for a multi-database link.
pub const MULTI_API: &str = "2025-08-01-preview";

/// What may not stay raw in a path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b'\'');

/// A name as one path segment.
pub fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    #[error("ARM answered {status} {code}: {message}")]
    Api { status: u16, code: String, message: String },
    #[error("the long-running operation ended {status}: {code}: {message}")]
    Operation { status: String, code: String, message: String },
    #[error("the long-running operation did not end within {0:?}")]
    OperationTimeout(Duration),
    #[error("no answer from ARM: {0}")]
    Transport(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{0}")]
    Config(String),
}

impl ArmError {
    /// ARM's error code, for a finding or a retry decision.
    pub fn code(&self) -> Option<&str> {
        match self {
            ArmError::Api { code, .. } | ArmError::Operation { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// The managed instance's resource, and how to reach ARM.
pub struct Arm {
    http: reqwest::Client,
    base: String,
    tokens: Tokens,
    /// `/subscriptions/…/managedInstances/{mi}`
    pub instance_path: String,
    pub timeout: Duration,
}

/// A PUT or DELETE ARM accepted: done at once, or to be polled.
#[derive(Debug, Clone)]
pub enum Accepted {
    Done(Option<Value>),
    Pending { status_url: Option<String>, location: Option<String>, retry_after: Duration },
}

impl Accepted {
    /// The URL that tells how the operation is going (kept in the journal).
    pub fn poll_url(&self) -> Option<String> {
        match self {
            Accepted::Done(_) => None,
            Accepted::Pending { status_url, location, .. } => status_url.clone().or(location.clone()),
        }
    }
}

/// The three parts of a managed instance's resource ID.
pub fn instance_path(p: &Profile) -> Result<String, ArmError> {
    if let Some(id) = &p.arm.resource_id {
        let parts: Vec<&str> = id.trim_matches('/').split('/').collect();
        let ok = parts.len() == 8
            && parts[0].eq_ignore_ascii_case("subscriptions")
            && parts[2].eq_ignore_ascii_case("resourceGroups")
            && parts[4].eq_ignore_ascii_case("providers")
            && parts[5].eq_ignore_ascii_case("Microsoft.Sql")
            && parts[6].eq_ignore_ascii_case("managedInstances");
        if !ok {
            return Err(ArmError::Config(format!(
                "arm.resource_id `{id}` is not /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Sql/managedInstances/<name>"
            )));
        }
        return Ok(format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Sql/managedInstances/{}",
            segment(parts[1]),
            segment(parts[3]),
            segment(parts[7])
        ));
    }
    let mi = p
        .arm
        .managed_instance
        .clone()
        .unwrap_or_else(|| p.managed_instance.fqdn.split('.').next().unwrap_or("").to_string());
    match (&p.arm.subscription_id, &p.arm.resource_group) {
        (Some(s), Some(rg)) => Ok(format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Sql/managedInstances/{}",
            segment(s),
            segment(rg),
            segment(&mi)
        )),
        _ => Err(ArmError::Config(
            "the profile's [arm] needs subscription_id and resource_group (or resource_id)".into(),
        )),
    }
}

/// How long the server asks us to wait: `retry-after-ms`, `x-ms-retry-after-ms`,
/// then `Retry-After` (Azure's order), capped.
fn retry_after(h: &reqwest::header::HeaderMap, default: Duration) -> Duration {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<f64>().ok());
    let d = get("retry-after-ms")
        .or_else(|| get("x-ms-retry-after-ms"))
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .or_else(|| get("retry-after").map(Duration::from_secs_f64))
        .unwrap_or(default);
    d.min(Duration::from_secs(60))
}

impl Arm {
    pub fn new(p: &Profile) -> Result<Arm, ArmError> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60).min(p.arm.timeout.max(Duration::from_secs(1))))
            .user_agent(concat!("milink/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &p.arm.ca_cert {
            let pem = std::fs::read(ca).map_err(|e| ArmError::Config(format!("arm.ca_cert {}: {e}", ca.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ArmError::Config(format!("arm.ca_cert {}: {e}", ca.display())))?;
            b = b.tls_certs_only(certs);
        }
        let http = b.build().map_err(|e| ArmError::Config(e.to_string()))?;
        Ok(Arm {
            http,
            base: p.arm.base_url.trim_end_matches('/').to_string(),
            tokens: Tokens::new(p.arm.auth, p.arm_token.clone()),
            instance_path: instance_path(p)?,
            timeout: p.arm.timeout,
        })
    }

    /// The URL of a child of the instance (`""` for the instance itself).
    pub fn url(&self, child: &str, api: &str) -> String {
        let sep = if child.is_empty() { "" } else { "/" };
        format!("{}{}{sep}{child}?api-version={api}", self.base, self.instance_path)
    }

    /// One request, retried when ARM throttles (429), fails (5xx) or cannot be
    /// reached, within bounds; other errors come back with ARM's code.
    async fn send(&self, method: Method, url: &str, body: Option<&Value>) -> Result<reqwest::Response, ArmError> {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let token = self.tokens.token(ARM_SCOPE).await?;
            let mut req = self.http.request(method.clone(), url).bearer_auth(token.expose());
            if let Some(b) = body {
                req = req.json(b);
            }
            match req.send().await {
                Ok(r) => {
                    let status = r.status();
                    let (retryable, wait) = if status == StatusCode::TOO_MANY_REQUESTS {
                        (attempt < 6, retry_after(r.headers(), Duration::from_secs(5)))
                    } else if status.is_server_error() {
                        (attempt < 4, Duration::from_millis(250 << attempt))
                    } else if status == StatusCode::CONFLICT {
                        // Another operation holds the resource: it will end; wait a little.
                        let wait = retry_after(r.headers(), Duration::from_secs(2));
                        let e = error_of(r).await;
                        if e.code() == Some("ConflictingServerOperation")
                            && attempt < 4
                            && started.elapsed() + wait < self.timeout
                        {
                            tracing::info!(%url, "ARM: another operation is in progress, retrying");
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                        return Err(e);
                    } else {
                        return Ok(r);
                    };
                    if !retryable || started.elapsed() + wait > self.timeout {
                        return Err(error_of(r).await);
                    }
                    tracing::info!(%url, status = status.as_u16(), ?wait, attempt, "ARM: retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    let wait = Duration::from_millis(250 << attempt);
                    if attempt >= 3 || started.elapsed() + wait > self.timeout {
                        return Err(ArmError::Transport(e.to_string()));
                    }
                    tracing::info!(error = %e, "ARM: no answer, retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// GET; `None` when the resource does not exist.
    pub async fn get(&self, url: &str) -> Result<Option<Value>, ArmError> {
        let r = self.send(Method::GET, url, None).await?;
        if r.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !r.status().is_success() {
            return Err(error_of(r).await);
        }
        r.json().await.map(Some).map_err(|e| ArmError::Transport(e.to_string()))
    }

    /// Every item of a list, following `nextLink`.
    pub async fn list(&self, url: &str) -> Result<Vec<Value>, ArmError> {
        let mut out = Vec::new();
        let mut next = Some(url.to_string());
        let mut pages = 0;
        while let Some(u) = next.take() {
            pages += 1;
            if pages > 1000 {
                return Err(ArmError::Transport("more than 1000 pages: nextLink loops".into()));
            }
            let r = self.send(Method::GET, &u, None).await?;
            if !r.status().is_success() {
                return Err(error_of(r).await);
            }
            let v: Value = r.json().await.map_err(|e| ArmError::Transport(e.to_string()))?;
            out.extend(v["value"].as_array().cloned().unwrap_or_default());
            next = v["nextLink"].as_str().filter(|s| !s.is_empty()).map(str::to_string);
        }
        Ok(out)
    }

    /// PUT or DELETE: done, or accepted as a long-running operation.
    pub async fn change(&self, method: Method, url: &str, body: Option<&Value>) -> Result<Accepted, ArmError> {
        let r = self.send(method, url, body).await?;
        let status = r.status();
        if !status.is_success() {
            return Err(error_of(r).await);
        }
        let header = |k: &str| r.headers().get(k).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (status_url, location) = (header("azure-asyncoperation"), header("location"));
        if status == StatusCode::ACCEPTED || (status == StatusCode::CREATED && status_url.is_some()) {
            let retry = retry_after(r.headers(), Duration::from_secs(2));
            return Ok(Accepted::Pending { status_url, location, retry_after: retry });
        }
        let text = r.text().await.unwrap_or_default();
        Ok(Accepted::Done(serde_json::from_str(&text).ok()))
    }

    /// Polls an operation to its end (Azure-AsyncOperation status, else Location),
    /// within the profile's timeout.
    pub async fn wait(&self, poll_url: &str, first_wait: Duration) -> Result<(), ArmError> {
        let started = Instant::now();
        let mut wait = first_wait;
        loop {
            if started.elapsed() + wait > self.timeout {
                return Err(ArmError::OperationTimeout(self.timeout));
            }
            tokio::time::sleep(wait).await;
            let r = self.send(Method::GET, poll_url, None).await?;
            let status = r.status();
            wait = retry_after(r.headers(), Duration::from_secs(2));
            if status == StatusCode::ACCEPTED {
                continue;
            }
            if !status.is_success() {
                return Err(error_of(r).await);
            }
            let text = r.text().await.unwrap_or_default();
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            match v["status"].as_str() {
                // A Location result (the resource itself) has no status: done.
                None => return Ok(()),
                Some(s) if s.eq_ignore_ascii_case("Succeeded") => return Ok(()),
                Some(s) if s.eq_ignore_ascii_case("Failed") || s.eq_ignore_ascii_case("Canceled") => {
                    return Err(ArmError::Operation {
                        status: s.to_string(),
                        code: v["error"]["code"].as_str().unwrap_or("").to_string(),
                        message: v["error"]["message"].as_str().unwrap_or("").to_string(),
                    });
                }
                Some(_) => continue,
            }
        }
    }
}

async fn error_of(r: reqwest::Response) -> ArmError {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let e = if v["error"].is_object() { &v["error"] } else { &v };
    ArmError::Api {
        status,
        code: e["code"].as_str().unwrap_or("").to_string(),
        message: e["message"].as_str().map(str::to_string).unwrap_or_else(|| text.chars().take(300).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_and_resource_ids() {
        assert_eq!(segment("DAG_Sales]DB"), "DAG_Sales%5DDB");
        assert_eq!(segment("O'Brien DB"), "O%27Brien%20DB");
        let mut p = Profile::default();
        p.arm.resource_id =
            Some("/subscriptions/s/resourceGroups/r g/providers/Microsoft.Sql/managedInstances/mi".into());
        assert_eq!(
            instance_path(&p).unwrap(),
            "/subscriptions/s/resourceGroups/r%20g/providers/Microsoft.Sql/managedInstances/mi"
        );
        p.arm.resource_id = Some("/subscriptions/s".into());
        assert!(instance_path(&p).is_err());
        p.arm.resource_id = None;
        p.managed_instance.fqdn = "mi-x.abc.database.windows.net".into();
        p.arm.subscription_id = Some("s".into());
        p.arm.resource_group = Some("rg".into());
        assert!(instance_path(&p).unwrap().ends_with("/managedInstances/mi-x"));
    }

    #[test]
    fn retry_after_headers_in_azures_order() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&h, Duration::ZERO), Duration::from_secs(3));
        h.insert("retry-after-ms", "150".parse().unwrap());
        assert_eq!(retry_after(&h, Duration::ZERO), Duration::from_millis(150));
        h.insert("retry-after", "100000".parse().unwrap());
        h.remove("retry-after-ms");
        assert_eq!(retry_after(&h, Duration::ZERO), Duration::from_secs(60));
    }
}
