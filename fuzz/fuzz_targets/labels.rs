//! YOLO, YOLO-OBB and DOTA label and prediction lines: no panic, every error names the file and its line, and
//! no more records than lines.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nsod_types::formats::{dota, yolo, yolo_obb};
use nsod_types::{ClassNames, ImageSize};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("labels/x.txt");
    let names = ClassNames::dota_v1();
    let size = ImageSize::new(1024, 768);
    let lines = text.lines().count();
    let check = |r: Result<usize, nsod_types::FormatError>| match r {
        Ok(n) => assert!(n <= lines, "{n} records from {lines} lines"),
        Err(e) => {
            let m = e.to_string();
            assert!(
                m.starts_with("labels/x.txt"),
                "an error without the file: {m}"
            );
        }
    };
    check(yolo::parse_labels(text, path, size, &names).map(|v| v.len()));
    check(yolo::parse_predictions(text, path, size, &names).map(|v| v.len()));
    check(yolo_obb::parse_labels(text, path, size, &names).map(|v| v.len()));
    check(yolo_obb::parse_predictions(text, path, size, &names).map(|v| v.len()));
    check(dota::parse_labels(text, path, &names).map(|v| v.len()));
});
