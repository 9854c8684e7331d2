//! `nsod serve`'s request readers: an Open Inference Protocol (KServe v2) body, JSON or JSON plus binary tensor
//! data, with its `Inference-Header-Content-Length` header, and the per-request settings read from its
//! `parameters`: no panic; the image never holds more bytes than the body; refusals say what is wrong.
//!
//! Input: the header value up to the first newline (`-` for none), then the body.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nsod_pipeline::PipelineConfig;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"-"[..], data),
    };
    let header = std::str::from_utf8(header).ok().filter(|h| *h != "-");
    let req = match nsod_serve::kserve::parse(body, header) {
        Ok(r) => r,
        Err(e) => {
            assert!(!e.is_empty());
            return;
        }
    };
    // Base64 decodes to less than its text; binary data is a slice of the body.
    assert!(
        req.image.len() <= body.len(),
        "{} image bytes from a {}-byte body",
        req.image.len(),
        body.len()
    );
    if nsod_serve::params::known_keys(req.parameters.keys(), &["binary_data_output"]).is_err() {
        return;
    }
    let config = PipelineConfig::default();
    match nsod_serve::params::overrides(&config, true, &|k| req.parameters.get(k).cloned()) {
        Ok(o) => {
            // Accepted settings give a configuration that validates.
            let c = o.apply(&config).expect("accepted settings apply");
            assert!(
                c.validate().is_ok(),
                "{o:?} accepted but {:?}",
                c.validate()
            );
        }
        Err(e) => assert!(e.starts_with("parameter "), "{e}"),
    }
});
