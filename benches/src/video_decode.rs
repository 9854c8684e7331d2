//! Decode-only speed of nsod's video input (benches/video.sh): every frame of a video through nsod-video's reader
//! (demux, decode, conversion to RGB24), nothing else. Prints `decode <seconds> s, <frames> frames, <fps> frames/s`.

fn main() -> std::process::ExitCode {
    let Some(input) = std::env::args().nth(1) else {
        eprintln!("usage: video-decode VIDEO");
        return std::process::ExitCode::from(2);
    };
    let start = std::time::Instant::now();
    let mut reader = match nsod_video::Reader::open(&input, nsod_video::Options::default()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut frames = 0u64;
    loop {
        match reader.next_frame() {
            Ok(Some(_)) => frames += 1,
            Ok(None) => break,
            Err(e) => {
                eprintln!("error: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    let s = start.elapsed().as_secs_f64();
    println!(
        "decode {s:.3} s, {frames} frames, {:.1} frames/s",
        frames as f64 / s.max(1e-9)
    );
    std::process::ExitCode::SUCCESS
}
