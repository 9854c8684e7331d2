//! Writes nsod's letterboxed model input for an image as raw little-endian f32 (3 x size x size, RGB planar in
//! [0, 1]): `cargo run -p nsod-detect --example letterbox_dump IMAGE SIZE OUT`. The letterbox parity test compares
//! it with OpenCV's.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, image, size, out] = &args[..] else {
        eprintln!("usage: letterbox_dump IMAGE SIZE OUT");
        std::process::exit(2);
    };
    let img = nsod_detect::load_image(std::path::Path::new(image)).expect("image");
    let size: u32 = size.parse().expect("size");
    let mut buf = vec![0f32; 3 * (size * size) as usize];
    let region = nsod_detect::preprocess::Region {
        x: 0,
        y: 0,
        width: img.width(),
        height: img.height(),
    };
    nsod_detect::preprocess::letterbox_into(&img, region, size, size, &mut buf);
    let bytes: Vec<u8> = buf.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(out, bytes).expect("write");
}
