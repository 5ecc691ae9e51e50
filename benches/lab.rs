//! `cargo bench --bench lab`: lab start-to-ready, 100 concurrent TLS logins
//! (tiberius), and 100 logins in a row by Microsoft's own driver (mssql-python,
//! skipped with a note where it is not installed).
//! Prints numbers; asserts nothing (targets: start < 300 ms; logins recorded).

use std::path::Path;
use std::time::{Duration, Instant};

use milink::lab::Lab;
use milink::lab::scenario::Scenario;
use tiberius::{AuthMethod, Client, Config, EncryptionLevel};
use tokio::net::TcpStream;
use tokio_util::compat::TokioAsyncWriteCompatExt;

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    let pick = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!(
        "min {:>7.1} ms  median {:>7.1} ms  p95 {:>7.1} ms  max {:>7.1} ms  (n={})",
        v[0].as_secs_f64() * 1e3,
        pick(0.5).as_secs_f64() * 1e3,
        pick(0.95).as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3,
        v.len()
    )
}

async fn login(side: &milink::lab::SideInfo) -> Duration {
    let start = Instant::now();
    let mut c = Config::new();
    c.host(&side.fqdn);
    c.port(side.port);
    c.authentication(AuthMethod::sql_server(&side.user, &side.password));
    c.encryption(EncryptionLevel::Required);
    c.trust_cert_ca(&side.ca_cert);
    let tcp = TcpStream::connect((side.host.as_str(), side.port)).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    let mut client = Client::connect(c, tcp.compat_write()).await.expect("login");
    client.simple_query("SELECT @@SERVERNAME").await.unwrap().into_first_result().await.unwrap();
    start.elapsed()
}

fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let path = dir.join("healthy.toml");
    rt.block_on(async {
        // Start to ready: scenario read, certificates, catalogs, every listener bound.
        for name in ["healthy.toml", "link-healthy.toml"] {
            let mut starts = Vec::new();
            for _ in 0..30 {
                let t = Instant::now();
                let scenario = Scenario::load(&dir.join(name)).unwrap();
                let lab = Lab::start(&scenario).await.unwrap();
                starts.push(t.elapsed());
                drop(lab);
            }
            println!("lab start to ready ({name:<18}) {}", stats(starts));
        }

        let scenario = Scenario::load(&dir.join("link-healthy.toml")).unwrap();
        let lab = Lab::start(&scenario).await.unwrap();
        mssql_python_logins(&lab.info.sql_server).await;
        drop(lab);

        let scenario = Scenario::load(&path).unwrap();
        let lab = Lab::start(&scenario).await.unwrap();
        let side = lab.info.sql_server.clone();
        for round in 1..=3 {
            let t = Instant::now();
            let tasks: Vec<_> = (0..100)
                .map(|_| {
                    let side = side.clone();
                    tokio::spawn(async move { login(&side).await })
                })
                .collect();
            let mut each = Vec::new();
            for task in tasks {
                each.push(task.await.unwrap());
            }
            let wall = t.elapsed();
            println!(
                "100 concurrent TLS logins, round {round}    wall {:>7.1} ms; per login {}",
                wall.as_secs_f64() * 1e3,
                stats(each)
            );
        }
    });
}

/// Each login a new connection over TLS with the lab's CA trusted, one query,
/// then close: timed inside Python so interpreter start is not counted. The
/// driver pools connections unless told not to; a pooled "login" is a reset.
const MSSQL_PYTHON_LOGINS: &str = r#"
import json, os, sys, time
import mssql_python
if sys.argv[1] == "unpooled":
    mssql_python.pooling(enabled=False)
s = json.loads(sys.stdin.readline())
os.environ["SSL_CERT_FILE"] = s["ca_cert"]
cs = (f"Server=tcp:{s['host']},{s['port']};Database=master;UID={s['user']};PWD={s['password']};"
      f"Encrypt=yes;TrustServerCertificate=no;HostNameInCertificate={s['fqdn']};")
each = []
for _ in range(100):
    t = time.perf_counter()
    c = mssql_python.connect(cs, autocommit=True, timeout=10)
    cur = c.cursor(); cur.execute("SELECT @@SERVERNAME"); cur.fetchall(); c.close()
    each.append((time.perf_counter() - t) * 1000)
print(json.dumps(each))
"#;

async fn mssql_python_logins(side: &milink::lab::SideInfo) {
    for pool in ["unpooled", "pooled"] {
        mssql_python_round(side, pool).await;
    }
}

async fn mssql_python_round(side: &milink::lab::SideInfo, pool: &str) {
    use std::io::Write;
    let input = serde_json::to_string(side).unwrap();
    let child = std::process::Command::new("python3")
        .args(["-c", MSSQL_PYTHON_LOGINS, pool])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        println!("100 mssql-python logins in a row        skipped: no python3");
        return;
    };
    child.stdin.take().unwrap().write_all(format!("{input}\n").as_bytes()).unwrap();
    let t = Instant::now();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let wall = t.elapsed();
    match serde_json::from_slice::<Vec<f64>>(&out.stdout) {
        Ok(ms) => println!(
            "100 mssql-python logins in a row ({pool:<8}) wall {:>7.1} ms; per login {}",
            wall.as_secs_f64() * 1e3,
            stats(ms.iter().map(|m| Duration::from_secs_f64(m / 1e3)).collect())
        ),
        Err(_) => println!(
            "100 mssql-python logins in a row        skipped: {}",
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("mssql-python failed")
        ),
    }
}
