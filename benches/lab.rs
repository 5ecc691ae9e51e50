//! `cargo bench --bench lab`: lab start-to-ready, and 100 concurrent TLS logins.
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
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/healthy.toml");
    rt.block_on(async {
        // Start to ready: scenario read, certificates, catalogs, every listener bound.
        let mut starts = Vec::new();
        for _ in 0..30 {
            let t = Instant::now();
            let scenario = Scenario::load(&path).unwrap();
            let lab = Lab::start(&scenario).await.unwrap();
            starts.push(t.elapsed());
            drop(lab);
        }
        println!("lab start to ready (healthy.toml)      {}", stats(starts));

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
