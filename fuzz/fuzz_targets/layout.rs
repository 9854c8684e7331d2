//! Model output shapes (layout recognition) and decoding an output of the recognised layout: no panic; a
//! recognised layout decodes an output of its own shape.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nsod_detect::Layout;
use nsod_types::ClassNames;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let dims: Vec<i64> = data[3..]
        .chunks(2)
        .take(4)
        .map(|c| i64::from(i16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .collect();
    let nc = (data[0] % 32 != 0).then(|| usize::from(data[0] % 32));
    let obb = data[1] & 1 == 1;
    let end2end = match data[2] % 3 {
        0 => None,
        1 => Some(true),
        _ => Some(false),
    };
    let Ok(layout) = Layout::recognise(&dims, nc, obb, end2end) else {
        return;
    };
    let (d1, d2) = (dims[1].max(1) as usize, dims[2].max(1) as usize);
    if d1 * d2 > 1 << 16 {
        return;
    }
    let names = ClassNames::new((0..nc.unwrap_or(80)).map(|i| format!("c{i}")));
    let out: Vec<f32> = (0..d1 * d2).map(|i| (i % 97) as f32 / 97.0).collect();
    let _ = layout.decode(&out, [d1, d2], 0.25, &names, 300);
});
