//! Test harness: start a lab from a scenario, connect real clients to it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use milink::lab::scenario::Scenario;
use milink::lab::{Lab, SideInfo};
use tiberius::{AuthMethod, Client, Config, EncryptionLevel};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

/// `milink lab up --json` in a process of its own; `line` is its first line.
pub struct LabProcess {
    pub child: Child,
    pub line: String,
    _dir: Option<tempfile::TempDir>,
}

impl LabProcess {
    pub fn start(scenario: &str) -> LabProcess {
        LabProcess::spawn(scenario_path(scenario), None)
    }

    /// A scenario that extends `scenario` with `extra` TOML (beside copies of
    /// the shipped scenarios: `extends` stays inside its file's folder).
    pub fn start_with(scenario: &str, extra: &str) -> LabProcess {
        let dir = tempfile::tempdir().unwrap();
        for f in scenario_files() {
            std::fs::copy(&f, dir.path().join(f.file_name().unwrap())).unwrap();
        }
        let file = dir.path().join("with-more.toml");
        let text = format!("extends = \"{scenario}\"\ndescription = \"{scenario} and more\"\n{extra}");
        std::fs::write(&file, text).unwrap();
        LabProcess::spawn(file, Some(dir))
    }

    /// The lab a support bundle replays as (`lab up --bundle`).
    pub fn from_bundle(zip: &std::path::Path) -> LabProcess {
        LabProcess::spawn_args(&["--bundle".as_ref(), zip.as_os_str()], None)
    }

    fn spawn(file: PathBuf, dir: Option<tempfile::TempDir>) -> LabProcess {
        LabProcess::spawn_args(&[file.as_os_str()], dir)
    }

    fn spawn_args(args: &[&std::ffi::OsStr], dir: Option<tempfile::TempDir>) -> LabProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_milink"))
            .args(["lab", "up", "--json"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("milink runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with('{'), "first line is JSON: {line}");
        LabProcess { child, line, _dir: dir }
    }

    /// SIGTERM, as a service manager stops it.
    pub fn stop(mut self) -> std::process::ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        self.child.wait().unwrap()
    }
}

/// A test that fails (or forgets `stop`) must not leave its lab running.
impl Drop for LabProcess {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
            let _ = self.child.wait();
        }
    }
}

/// The column names of the seed's "verify the link" query, as every client must see them.
pub const VERIFY_LINK_COLUMNS: [&str; 6] = [
    "Replica",
    "Endpoint",
    "Connected state",
    "Last connection error",
    "Last connection error No",
    "Last error timestamp",
];

pub fn init() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

pub fn scenario_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(name)
}

/// Every file in `scenarios/`, sorted.
pub fn scenario_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(scenario_path(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

pub fn scenario(name: &str) -> Scenario {
    Scenario::load(&scenario_path(name)).expect("scenario loads")
}

/// A scenario file's text with edits, for faults the shipped files don't cover.
pub fn scenario_with(name: &str, edit: impl FnOnce(&mut toml::Table)) -> Scenario {
    let text = std::fs::read_to_string(scenario_path(name)).unwrap();
    let mut table: toml::Table = toml::from_str(&text).unwrap();
    edit(&mut table);
    Scenario::parse(&toml::to_string(&table).unwrap(), name).expect("edited scenario is valid")
}

pub fn set(table: &mut toml::Table, path: &str, value: impl Into<toml::Value>) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts.pop().unwrap();
    let mut t = table;
    for p in parts {
        t = t.entry(p).or_insert_with(|| toml::Value::Table(Default::default())).as_table_mut().unwrap();
    }
    t.insert(last.to_string(), value.into());
}

pub async fn lab(name: &str) -> Lab {
    init();
    Lab::start(&scenario(name)).await.expect("lab starts")
}

pub type Tds = Client<Compat<TcpStream>>;

pub fn config(side: &SideInfo, enc: EncryptionLevel) -> Config {
    let mut c = Config::new();
    c.host(&side.fqdn);
    c.port(side.port);
    c.authentication(AuthMethod::sql_server(&side.user, &side.password));
    c.encryption(enc);
    c.trust_cert_ca(&side.ca_cert);
    c
}

pub async fn connect_with(side: &SideInfo, config: Config) -> tiberius::Result<Tds> {
    let tcp = TcpStream::connect((side.host.as_str(), side.port)).await?;
    tcp.set_nodelay(true)?;
    tokio::time::timeout(Duration::from_secs(10), Client::connect(config, tcp.compat_write()))
        .await
        .expect("login does not hang")
}

pub async fn connect(side: &SideInfo) -> Tds {
    connect_with(side, config(side, EncryptionLevel::Required)).await.expect("login succeeds")
}

pub async fn query(client: &mut Tds, sql: &str) -> tiberius::Result<Vec<tiberius::Row>> {
    client.simple_query(sql).await?.into_first_result().await
}

/// A resolver that asks the lab's DNS server, from `source` (which side asks).
pub fn resolver(lab: &Lab, source: &str) -> hickory_resolver::TokioResolver {
    let dns = format!("{}:{}", lab.info.dns.host, lab.info.dns.port).parse().unwrap();
    resolver_at(dns, Some(std::net::SocketAddr::new(source.parse().unwrap(), 0)))
}

pub fn resolver_at(dns: std::net::SocketAddr, bind: Option<std::net::SocketAddr>) -> hickory_resolver::TokioResolver {
    use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig, ResolverOpts};
    let mut udp = ConnectionConfig::udp();
    udp.port = dns.port();
    udp.bind_addr = bind;
    let mut ns = NameServerConfig::udp(dns.ip());
    ns.connections = vec![udp];
    let mut opts = ResolverOpts::default();
    opts.timeout = Duration::from_millis(700);
    opts.attempts = 1;
    opts.cache_size = 0;
    hickory_resolver::Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
    )
    .with_options(opts)
    .build()
    .unwrap()
}

/// How a TCP connect to the address ends, as a port probe classifies it.
pub async fn probe(host: &str, port: u16, timeout: Duration) -> (&'static str, Duration) {
    let start = std::time::Instant::now();
    let r = tokio::time::timeout(timeout, TcpStream::connect((host, port))).await;
    let kind = match r {
        Err(_) => "filtered",
        Ok(Ok(_)) => "open",
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => "refused",
        Ok(Err(_)) => "other",
    };
    (kind, start.elapsed())
}

/// Topology tests need root (network namespaces). CI is root: there a missing
/// privilege fails the test instead of skipping it.
pub fn can_run_topology() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root && std::env::var_os("CI").is_some() {
        panic!("topology tests need root in CI");
    }
    if !root {
        eprintln!("skipped: topology tests need root");
    }
    root
}

/// The finding with `id` in a JSON report (the first, for per-object checks).
pub fn finding(report: &serde_json::Value, id: &str) -> serde_json::Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id}"))
        .clone()
}

/// A plain HTTP request from a test without a runtime (the lab's control channel).
pub fn http_json(method: &str, url: &str, body: Option<serde_json::Value>) -> serde_json::Value {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut req = client.request(method.parse().unwrap(), url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap().json().await.unwrap()
    })
}

/// Where the client programs nobody here wrote are driven from.
pub fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// A client program nobody here wrote, fed `input` on stdin; `needs` says what
/// installs it when it is missing.
pub fn client(program: &str, args: &[&str], input: &str, needs: &str) -> std::process::Output {
    let mut cmd = Command::new(program);
    cmd.args(args);
    client_cmd(cmd, input, needs)
}

pub fn client_cmd(mut cmd: Command, input: &str, needs: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .current_dir(clients_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{:?} runs ({needs}; .ci/run installs it): {e}", cmd.get_program()));
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// A Python client from PyPI: `script` under tests/clients, with `args`.
pub fn python(script: &str, args: &[&str], modules: &str, needs: &str, input: &str) -> std::process::Output {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&python).args(["-c", &format!("import {modules}")]).status();
    assert!(probe.is_ok_and(|s| s.success()), "{needs} are needed (.ci/run installs them)");
    let mut all = vec![script];
    all.extend(args);
    client(&python, &all, input, needs)
}

/// Samples of Prometheus text as Prometheus's own Python parser reads them:
/// `[{"name", "labels", "value", "type"}]`.
pub fn prometheus_samples(text: &str) -> Vec<serde_json::Value> {
    use std::io::Write;
    let mut py = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/parse_metrics.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    py.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(out.status.success(), "prometheus_client: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The body of a GET to a milink metrics URL (`http://host:port/metrics`).
pub fn scrape(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    std::io::Write::write_fmt(&mut s, format_args!("GET /{path} HTTP/1.1\r\nHost: {host}\r\n\r\n")).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut s, &mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}
