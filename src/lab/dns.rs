//! The lab's DNS server (hickory-server): the scenario's records, answered by
//! which side asks (split horizon, told apart by the source address).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Header, HeaderCounts, Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use crate::lab::scenario::DnsRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    SqlServer,
    ManagedInstance,
}

#[derive(Debug, Clone)]
enum Answer {
    A(std::net::Ipv4Addr),
    Aaaa(std::net::Ipv6Addr),
    Cname(Name),
    NxDomain,
    ServFail,
    /// NOERROR with no records (the name exists, without an address).
    NoData,
    Silent,
}

#[derive(Debug, Clone)]
struct Entry {
    name: Name,
    answer: Answer,
    views: Vec<View>,
}

pub struct Zone {
    entries: Vec<Entry>,
    /// Source address → view; anyone else sees the SQL Server side's view, since
    /// milink usually runs near SQL Server.
    sources: Vec<(IpAddr, View)>,
}

fn fqdn(name: &str) -> Result<Name, String> {
    let mut n = Name::from_ascii(name.trim_end_matches('.')).map_err(|e| format!("`{name}`: {e}"))?;
    n.set_fqdn(true);
    Ok(n.to_lowercase())
}

impl Zone {
    /// `defaults` are the sides' own names; a scenario record for the same name
    /// and view replaces a default.
    pub fn new(
        defaults: &[(&str, IpAddr)],
        records: &[DnsRecord],
        sources: Vec<(IpAddr, View)>,
    ) -> Result<Zone, String> {
        let mut entries = Vec::new();
        for r in records {
            let answer = match r.kind.to_ascii_uppercase().as_str() {
                "A" => {
                    Answer::A(r.value.as_deref().unwrap_or("").parse().map_err(|e| format!("dns `{}`: {e}", r.name))?)
                }
                "AAAA" => Answer::Aaaa(
                    r.value.as_deref().unwrap_or("").parse().map_err(|e| format!("dns `{}`: {e}", r.name))?,
                ),
                "CNAME" => Answer::Cname(fqdn(r.value.as_deref().unwrap_or(""))?),
                "NXDOMAIN" => Answer::NxDomain,
                "SERVFAIL" => Answer::ServFail,
                "NODATA" => Answer::NoData,
                _ => Answer::Silent,
            };
            let views = match r.view.as_str() {
                "sql_server" => vec![View::SqlServer],
                "managed_instance" => vec![View::ManagedInstance],
                _ => vec![View::SqlServer, View::ManagedInstance],
            };
            entries.push(Entry { name: fqdn(&r.name)?, answer, views });
        }
        for (name, ip) in defaults {
            let name = fqdn(name)?;
            let views: Vec<View> = [View::SqlServer, View::ManagedInstance]
                .into_iter()
                .filter(|v| !entries.iter().any(|e| e.name == name && e.views.contains(v)))
                .collect();
            if views.is_empty() {
                continue;
            }
            let answer = match ip {
                IpAddr::V4(a) => Answer::A(*a),
                IpAddr::V6(a) => Answer::Aaaa(*a),
            };
            entries.push(Entry { name, answer, views });
        }
        Ok(Zone { entries, sources })
    }

    /// The first IPv4 address `name` leads to in `view` (for the lab's own
    /// programs, such as Agent's Test-NetConnection).
    pub fn resolve(&self, view: View, name: &str) -> Option<std::net::IpAddr> {
        let records = self.records(view, &fqdn(name).ok()?, RecordType::A).ok()?;
        records.iter().find_map(|r| match &r.data {
            RData::A(a) => Some(std::net::IpAddr::V4(a.0)),
            _ => None,
        })
    }

    fn lookup(&self, view: View, name: &Name) -> Vec<&Entry> {
        self.entries.iter().filter(|e| e.views.contains(&view) && &e.name == name).collect()
    }

    /// Records for `qtype` at `name`, following CNAMEs inside the zone.
    fn records(&self, view: View, name: &Name, qtype: RecordType) -> Result<Vec<Record>, Answer> {
        let mut out = Vec::new();
        let mut current = name.clone();
        for _ in 0..8 {
            let found = self.lookup(view, &current);
            if found.is_empty() {
                return if out.is_empty() { Err(Answer::NxDomain) } else { Ok(out) };
            }
            let mut next = None;
            for e in found {
                let rdata = match &e.answer {
                    Answer::A(a) if qtype == RecordType::A => RData::A(A(*a)),
                    Answer::Aaaa(a) if qtype == RecordType::AAAA => RData::AAAA(AAAA(*a)),
                    Answer::Cname(target) => {
                        next = Some(target.clone());
                        RData::CNAME(CNAME(target.clone()))
                    }
                    Answer::NxDomain | Answer::ServFail | Answer::Silent => {
                        return Err(e.answer.clone());
                    }
                    _ => continue,
                };
                out.push(Record::from_rdata(current.clone(), 60, rdata));
            }
            match next {
                Some(n) if qtype != RecordType::CNAME => current = n,
                _ => return Ok(out),
            }
        }
        Ok(out)
    }
}

pub struct Handler {
    zone: std::sync::Arc<Zone>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, mut response: R) -> ResponseInfo {
        let view = self
            .zone
            .sources
            .iter()
            .find(|(ip, _)| *ip == request.src().ip())
            .map(|(_, v)| *v)
            .unwrap_or(View::SqlServer);
        let builder = MessageResponseBuilder::from_message_request(request);
        let Ok(info) = request.request_info() else {
            let msg = builder.error_msg(&request.metadata, ResponseCode::FormErr);
            return response.send_response(msg).await.unwrap_or_else(|_| silent(request));
        };
        let name: Name = info.query.name().into();
        let result = self.zone.records(view, &name, info.query.query_type());
        let code = match &result {
            Ok(_) => ResponseCode::NoError,
            Err(Answer::NxDomain) => ResponseCode::NXDomain,
            Err(Answer::Silent) => return silent(request),
            Err(_) => ResponseCode::ServFail,
        };
        let mut meta = Metadata::response_from_request(&request.metadata);
        meta.authoritative = true;
        meta.response_code = code;
        let answers = result.unwrap_or_default();
        let msg = builder.build(meta, answers.iter(), [], [], []);
        response.send_response(msg).await.unwrap_or_else(|_| silent(request))
    }
}

/// The "answer" for a query the scenario wants unanswered.
fn silent(request: &Request) -> ResponseInfo {
    ResponseInfo::from(Header {
        metadata: Metadata::response_from_request(&request.metadata),
        counts: HeaderCounts::default(),
    })
}

pub struct DnsServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// UDP and TCP on the same port. Sockets are made synchronously, so that in
/// topology mode they can be made inside the router's namespace.
pub fn start(addr: SocketAddr, zone: std::sync::Arc<Zone>) -> std::io::Result<DnsServer> {
    let udp = std::net::UdpSocket::bind(addr)?;
    udp.set_nonblocking(true)?;
    let addr = udp.local_addr()?;
    let tcp = std::net::TcpListener::bind(addr)?;
    tcp.set_nonblocking(true)?;
    let (udp, tcp) = (UdpSocket::from_std(udp)?, TcpListener::from_std(tcp)?);
    let mut server = Server::new(Handler { zone });
    server.register_socket(udp);
    server.register_listener(tcp, Duration::from_secs(5), 4096);
    let task = tokio::spawn(async move {
        let _ = server.block_until_done().await;
    });
    Ok(DnsServer { addr, task })
}
