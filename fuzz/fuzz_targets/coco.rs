//! COCO annotations and results, through the evaluation: ground truth and results split at the first NUL byte;
//! no panic, errors name the file, and the accumulation stays within the category bound.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let (gt, results) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"[]"[..]),
    };
    let write = |bytes: &[u8]| {
        let mut f = tempfile::NamedTempFile::new_in("/dev/shm").expect("a temp file");
        f.write_all(bytes).expect("written");
        f
    };
    let (gt_file, res_file) = (write(gt), write(results));
    let data = match nsod_eval::load::load_coco_gt(gt_file.path()) {
        Ok((d, _)) => d,
        Err(e) => {
            assert!(
                e.to_string()
                    .contains(&gt_file.path().display().to_string()),
                "{e}"
            );
            return;
        }
    };
    assert!(data.categories.len() <= nsod_eval::load::MAX_CATEGORIES);
    let dets = match nsod_eval::load::load_coco_results(&data, res_file.path(), None) {
        Ok((d, _)) => d,
        Err(e) => {
            assert!(
                e.to_string()
                    .contains(&res_file.path().display().to_string()),
                "{e}"
            );
            return;
        }
    };
    let _ = nsod_eval::coco::evaluate(&data, &dets);
});
