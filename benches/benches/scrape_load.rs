//! Load generator for `benches/telemetry.sh`: GET a /metrics URL at a fixed rate for a fixed time from four
//! threads, and print the number of requests, errors and the p50/p99/max latency. Latency is measured from each
//! request's scheduled send time, so a stalled server is not hidden (no coordinated omission).
//! Usage: `cargo bench -p nsod-benches --bench scrape_load -- URL [RATE_PER_S] [SECONDS]` (loopback URLs only).

use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let Some(url) = args.first() else {
        println!("scrape_load: no URL given, nothing to do");
        return;
    };
    assert!(
        url.starts_with("http://127.")
            || url.starts_with("http://localhost")
            || url.starts_with("http://[::1]"),
        "loopback URLs only"
    );
    let rate: f64 = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(200.0);
    let secs = args
        .get(2)
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(10.0)
        .min(60.0);
    let threads = 4usize;
    let total = (rate * secs) as usize;
    let interval = Duration::from_secs_f64(threads as f64 / rate);
    let start = Instant::now() + Duration::from_millis(50);
    let handles: Vec<_> = (0..threads)
        .map(|k| {
            let url = url.clone();
            std::thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(Duration::from_secs(5)))
                    .build()
                    .into();
                let (mut lat, mut errors) = (Vec::new(), 0usize);
                let offset = interval.mul_f64(k as f64 / threads as f64);
                for i in 0..total / threads {
                    let scheduled = start + offset + interval * i as u32;
                    if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let ok = agent
                        .get(&url)
                        .call()
                        .and_then(|mut r| r.body_mut().read_to_string())
                        .is_ok();
                    if !ok {
                        errors += 1;
                    }
                    lat.push(scheduled.elapsed().as_secs_f64() * 1000.0);
                }
                (lat, errors)
            })
        })
        .collect();
    let (mut lat, mut errors) = (Vec::new(), 0);
    for h in handles {
        let (l, e) = h.join().expect("load thread");
        lat.extend(l);
        errors += e;
    }
    lat.sort_by(f64::total_cmp);
    let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "scrape load: {} requests in {:.1} s ({rate}/s target), {errors} errors, latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        start.elapsed().as_secs_f64(),
        q(0.5),
        q(0.99),
        lat[lat.len() - 1]
    );
}
