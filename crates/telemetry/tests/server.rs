//! The metrics server over real loopback HTTP.

use nsod_telemetry::server::MetricsServer;
use nsod_telemetry::{Telemetry, TelemetryError};
use std::sync::Arc;

fn get(url: &str, accept: Option<&str>) -> (u16, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.get(url);
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    let mut resp = req.call().unwrap();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (
        resp.status().as_u16(),
        ct,
        resp.body_mut().read_to_string().unwrap(),
    )
}

#[test]
fn serves_both_formats_health_and_readiness() {
    let t = Telemetry::new();
    let t = Arc::new(t);
    t.metrics.inference.images_in_flight.set(2);
    let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), t.clone()).unwrap();
    let base = format!("http://{}", server.local_addr());

    let (status, ct, body) = get(&format!("{base}/metrics"), None);
    assert_eq!(
        (status, ct.as_str()),
        (200, "text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(body.contains("nsod_images_in_flight 2\n"), "{body}");
    assert!(
        body.contains("# TYPE process_cpu_seconds_total counter"),
        "{body}"
    );
    assert!(body.contains("process_resident_memory_bytes "), "{body}");
    assert!(!body.contains("# EOF"));

    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let (status, ct, body) = get(&format!("{base}/metrics"), Some(accept));
    assert_eq!(
        (status, ct.as_str()),
        (
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        )
    );
    assert!(body.ends_with("# EOF\n"));

    assert_eq!(get(&format!("{base}/healthz"), None).0, 200);
    assert_eq!(get(&format!("{base}/readyz"), None).0, 503);
    server.set_ready(true);
    assert_eq!(get(&format!("{base}/readyz"), None).0, 200);
    assert_eq!(get(&format!("{base}/nope"), None).0, 404);

    // The same port again: a clear bind error.
    let err = MetricsServer::start(server.local_addr(), t).unwrap_err();
    assert!(matches!(err, TelemetryError::Bind { .. }));
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!(
            "cannot serve metrics on {}: ",
            server.local_addr()
        )) && msg.contains("in use"),
        "{msg}"
    );
    server.shutdown();
    assert!(
        std::net::TcpStream::connect(base.trim_start_matches("http://")).is_err(),
        "server still listening after shutdown"
    );
}
