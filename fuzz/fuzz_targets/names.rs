//! Class names (ONNX metadata `names`, names files, data.yaml maps) and metadata sizes: no panic, never more
//! classes than the text can name, sizes outside the accepted range refused.
#![no_main]
use libfuzzer_sys::fuzz_target;
use nsod_detect::metadata::{ModelMetadata, parse_names, parse_names_file};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for r in [parse_names(text), parse_names_file(text)] {
        if let Ok(names) = r {
            assert!(
                names.len() <= text.len() + 1,
                "{} names from {} bytes",
                names.len(),
                text.len()
            );
        }
    }
    let (k, v) = text.split_once('\n').unwrap_or(("imgsz", text));
    let key = if k.contains("names") {
        "names"
    } else {
        "imgsz"
    };
    if let Ok(m) = ModelMetadata::parse(|q| (q == key).then(|| v.to_owned())) {
        if let Some(hw) = m.imgsz {
            let ok = nsod_detect::model::check_input_size(hw, "metadata imgsz").is_ok();
            assert_eq!(
                ok,
                (32..=8192).contains(&hw.0) && (32..=8192).contains(&hw.1)
            );
        }
    }
});
