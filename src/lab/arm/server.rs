//! HTTP plumbing of the fake ARM (and the lab's control channel): HTTP/1.1,
//! over TLS when given a config, bodies capped, one task per connection.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Bodies beyond this are refused with 413 before they are read.
pub const MAX_BODY: usize = 1 << 20;

/// A request with its body read.
pub struct Req {
    pub method: hyper::Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
    /// `scheme://host[:port]` as the client addressed the server.
    pub base: String,
}

impl Req {
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub type Resp = Response<Full<Bytes>>;

pub fn json(status: StatusCode, body: &serde_json::Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(serde_json::to_vec(body).unwrap_or_default())));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", "application/json; charset=utf-8".parse().expect("static"));
    r
}

pub fn empty(status: StatusCode) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// A query-string value: `+` is a space there, then percent-decoding as in paths.
fn decode(s: &str) -> String {
    super::route::percent_decode(&s.replace('+', " "))
}

async fn read(req: Request<Incoming>, scheme: &str) -> Result<Req, Resp> {
    let (parts, body) = req.into_parts();
    let query = parts
        .uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    let host = parts.headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost").to_string();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Err(json(
                StatusCode::PAYLOAD_TOO_LARGE,
                &serde_json::json!({"error": {"code": "RequestEntityTooLarge", "message": format!("The request content is larger than {MAX_BODY} bytes.")}}),
            ));
        }
    };
    Ok(Req {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query,
        headers: parts.headers,
        body,
        base: format!("{scheme}://{host}"),
    })
}

/// Serves `handle` on `listener` until the task is aborted. A bad connection
/// (TLS garbage, a broken request) ends that connection only.
pub async fn serve<H, F>(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>, handle: H)
where
    H: Fn(Req) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Resp> + Send + 'static,
{
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let handle = handle.clone();
                conns.spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let handle = handle.clone();
                        async move {
                            Ok::<_, Infallible>(match read(req, scheme).await {
                                Ok(r) => handle(r).await,
                                Err(resp) => resp,
                            })
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match acceptor {
                        Some(a) => {
                            let Ok(Ok(tls)) = tokio::time::timeout(std::time::Duration::from_secs(10), a.accept(tcp)).await else {
                                return;
                            };
                            let _ = http.serve_connection(TokioIo::new(tls), service).await;
                        }
                        None => {
                            let _ = http.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// TLS 1.2 and 1.3 with the lab CA's certificate, HTTP/1.1 over ALPN.
pub fn tls_config(id: &crate::lab::certs::ServerIdentity) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let mut c = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(id.chain.clone(), id.key.clone_key())?;
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

/// Binds `ip:port`, or any free port on `ip` when that one needs privileges.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let l = match std::net::TcpListener::bind(addr) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            std::net::TcpListener::bind(SocketAddr::new(addr.ip(), 0))?
        }
        other => other?,
    };
    l.set_nonblocking(true)?;
    TcpListener::from_std(l)
}
