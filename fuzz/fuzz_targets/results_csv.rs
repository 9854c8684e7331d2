//! The results.csv tailer over arbitrary bytes written in arbitrary pieces (as a training process appends them):
//! no panic, a poll never fails, epochs read are finite.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nsod_train::{RunWatcher, Update};
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir_in("/dev/shm").expect("a temp dir");
    let path = dir.path().join("results.csv");
    let mut f = std::fs::File::create(&path).expect("created");
    let mut w = RunWatcher::new(dir.path());
    // The first byte says where to cut the rest into pieces.
    let (cuts, rest) = data.split_first().map_or((7u8, data), |(c, r)| (*c, r));
    let step = usize::from(cuts.max(1));
    for piece in rest.chunks(step) {
        f.write_all(piece).expect("appended");
        f.flush().expect("flushed");
        let (_, updates) = w.poll();
        for u in updates {
            if let Update::Epoch(row) = u {
                assert!(row.epoch.is_finite(), "{row:?}");
            }
        }
    }
});
