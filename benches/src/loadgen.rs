//! A small HTTP load generator for `benches/serve.sh` (loopback only, bounded in count and time).
//!
//! `nsod-loadgen URL FILE (closed CONCURRENCY | open RATE) REQUESTS [METRICS_URL]`
//!
//! * `closed C`: C clients send back to back (saturation throughput);
//! * `open R`: requests start at R per second whatever the answers (latency at a given load).
//!
//! Prints one line of `key=value` figures: requests, seconds, throughput, p50/p99 latency of 200 answers, counts
//! of 200, 503 and other codes, and with METRICS_URL the p99 latency of `/metrics` scraped every 250 ms meanwhile.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!("usage: nsod-loadgen URL FILE (closed C | open RATE) REQUESTS [METRICS_URL]");
        std::process::exit(2);
    }
    let url = args[1].clone();
    let body = Arc::new(std::fs::read(&args[2]).expect("the request body file"));
    let mode = args[3].as_str();
    let param: f64 = args[4].parse().expect("a number");
    let requests: usize = args[5].parse().expect("a count");
    let metrics = args.get(6).cloned();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(300)))
        .http_status_as_error(false)
        .build()
        .into();
    let results: Arc<Mutex<Vec<(u16, f64)>>> = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let scraper = metrics.map(|m| {
        let (agent, done) = (agent.clone(), done.clone());
        std::thread::spawn(move || {
            let mut lat = Vec::new();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                let t = Instant::now();
                if let Ok(mut r) = agent.get(&m).call() {
                    let _ = r.body_mut().read_to_string();
                    lat.push(t.elapsed().as_secs_f64());
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            lat
        })
    });
    let one = {
        let (agent, url, body, results) =
            (agent.clone(), url.clone(), body.clone(), results.clone());
        move || {
            let t = Instant::now();
            let code = match agent.post(&url).send(&body[..]) {
                Ok(mut r) => {
                    let _ = r.body_mut().read_to_vec();
                    r.status().as_u16()
                }
                Err(_) => 0,
            };
            results
                .lock()
                .unwrap()
                .push((code, t.elapsed().as_secs_f64()));
        }
    };
    let start = Instant::now();
    match mode {
        "closed" => {
            let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let clients: Vec<_> = (0..param as usize)
                .map(|_| {
                    let (one, next) = (one.clone(), next.clone());
                    std::thread::spawn(move || {
                        while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < requests {
                            one();
                        }
                    })
                })
                .collect();
            clients.into_iter().for_each(|c| c.join().unwrap());
        }
        _ => {
            let interval = Duration::from_secs_f64(1.0 / param);
            let handles: Vec<_> = (0..requests)
                .map(|i| {
                    let target = start + interval * i as u32;
                    if let Some(wait) = target.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let one = one.clone();
                    std::thread::spawn(one)
                })
                .collect();
            handles.into_iter().for_each(|h| h.join().unwrap());
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut metrics_lat = scraper.map(|s| s.join().unwrap()).unwrap_or_default();
    let r = results.lock().unwrap();
    let mut ok: Vec<f64> = r.iter().filter(|x| x.0 == 200).map(|x| x.1).collect();
    let shed = r.iter().filter(|x| x.0 == 503).count();
    let other = r.len() - ok.len() - shed;
    println!(
        "requests={} seconds={seconds:.2} throughput={:.3} ok={} shed={shed} other={other} p50={:.3} p99={:.3} metrics_p99={:.4}",
        r.len(),
        ok.len() as f64 / seconds,
        ok.len(),
        quantile(&mut ok.clone(), 0.5),
        quantile(&mut ok, 0.99),
        quantile(&mut metrics_lat, 0.99),
    );
}
