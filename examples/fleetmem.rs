fn rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
        .collect::<Vec<_>>()
        .join(" ")
}
#[tokio::main]
async fn main() {
    let s = milink::lab::scenario::Scenario::load(std::path::Path::new("scenarios/link-healthy.toml")).unwrap();
    println!("start {}", rss());
    let t = std::time::Instant::now();
    let mut labs = Vec::new();
    for i in 0..100 {
        labs.push(milink::lab::Lab::start(&s).await.unwrap());
        if i == 0 {
            println!("1 lab {}", rss());
        }
    }
    println!("100 labs {} in {:?}", rss(), t.elapsed());
}
