//! predictions.jsonl records (the reader every command uses): no panic, every error names the file and line,
//! every record read validates (finite boxes, known fields).
#![no_main]
use libfuzzer_sys::fuzz_target;
use nsod_types::formats::jsonl::JsonlReader;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let mut f = tempfile::NamedTempFile::new_in("/dev/shm").expect("a temp file");
    f.write_all(data).expect("written");
    let path = f.path().to_path_buf();
    let reader = JsonlReader::open(&path).expect("opens");
    let lines = data.split(|&b| b == b'\n').count();
    let mut records = 0;
    for r in reader {
        match r {
            Ok(rec) => {
                records += 1;
                for d in &rec.detections {
                    assert!(d.score.is_finite(), "{rec:?}");
                }
            }
            Err(e) => {
                let m = e.to_string();
                assert!(
                    m.contains(&path.display().to_string()),
                    "an error without the file: {m}"
                );
            }
        }
    }
    assert!(records <= lines);
});
