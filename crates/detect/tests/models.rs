//! Inference on real Ultralytics models. The parity tests use the models in `$NSOD_TEST_MODELS` (../shared/models
//! in CI) and Ultralytics' own predictions on a DOTA crop: ignored (visibly, with the reason) unless the shared
//! assets are set, and always run under `CI=true` (see nsod-testkit). The tests of batching and of the pipelined
//! schedule use the committed dynamic-batch model and a sample image, and always run.

use nsod_detect::{Detector, DetectorConfig, Model, ModelOptions, Rect, SliceMode, load_image};
use nsod_runtime::Runtime;
use nsod_types::geometry::rotated_iou;
use nsod_types::{Detection, OrientedBox};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

fn runtime() -> &'static Arc<Runtime> {
    static RT: OnceLock<Arc<Runtime>> = OnceLock::new();
    RT.get_or_init(|| {
        Arc::new(Runtime::load(Some(&nsod_testkit::ort_lib())).expect("ONNX Runtime loads"))
    })
}

struct Assets {
    rt: &'static Arc<Runtime>,
    models: PathBuf,
    data: PathBuf,
}

fn assets() -> Assets {
    Assets {
        rt: runtime(),
        models: nsod_testkit::shared_models(),
        data: nsod_testkit::shared_data(),
    }
}

fn detector(a: &Assets, model: &str, config: DetectorConfig) -> Detector {
    let opts = ModelOptions {
        threads: 2,
        ..Default::default()
    };
    Detector::new(
        Model::load(a.rt, &a.models.join(model), &opts).unwrap(),
        config,
    )
}

#[derive(Debug)]
struct Reference {
    class_id: u32,
    conf: f32,
    obb: OrientedBox,
}

fn reference(path: &Path) -> Vec<Reference> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let dets = v["detections"].as_array().unwrap();
    assert_eq!(dets.len() as u64, v["n_dets"].as_u64().unwrap());
    dets.iter()
        .map(|d| {
            let r: Vec<f32> = d["xywhr"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            Reference {
                class_id: d["class_id"].as_u64().unwrap() as u32,
                conf: d["conf"].as_f64().unwrap() as f32,
                obb: OrientedBox::new(r[0], r[1], r[2], r[3], r[4]),
            }
        })
        .collect()
}

/// One-to-one matching: same count; each reference box paired with an unused nsod box of the same class with
/// rotated IoU >= 0.95 and |score difference| <= 1e-3.
fn assert_parity(ours: &[Detection], want: &[Reference]) {
    assert_eq!(ours.len(), want.len(), "detection count");
    let mut used = vec![false; ours.len()];
    for r in want {
        let best = ours
            .iter()
            .enumerate()
            .filter(|(i, d)| !used[*i] && d.class_id == r.class_id)
            .map(|(i, d)| {
                (
                    i,
                    rotated_iou(&d.obb.unwrap(), &r.obb),
                    (d.score - r.conf).abs(),
                )
            })
            .filter(|&(_, iou, ds)| iou >= 0.95 && ds <= 1e-3)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((i, _, _)) = best else {
            panic!("no match for {r:?}")
        };
        used[i] = true;
    }
}

#[test]
#[cfg_attr(
    not(nsod_shared_assets),
    ignore = "needs the shared test assets (NSOD_TEST_MODELS, NSOD_TEST_DATA)"
)]
fn yolov8_obb_matches_ultralytics_on_the_crop() {
    let a = assets();
    let mut det = detector(
        &a,
        "yolov8n-obb_1024.onnx",
        DetectorConfig {
            slice: SliceMode::Off,
            ..Default::default()
        },
    );
    assert_eq!(det.model.info.names.len(), 15);
    assert_eq!(det.model.info.input_hw, (1024, 1024));
    let img = load_image(&a.data.join("P0006_crop1024_x0_y0.png")).unwrap();
    let out = det.detect(&img).unwrap();
    assert_eq!(out.slices, 1);
    let want = reference(
        &a.data
            .join("parity/ultralytics_yolov8n-obb_1024__crop1024_x0_y0.json"),
    );
    assert_parity(&out.detections, &want);
    assert!(
        out.detections
            .iter()
            .all(|d| d.class_name == "large vehicle" || d.class_name == "small vehicle")
    );
}

#[test]
#[cfg_attr(
    not(nsod_shared_assets),
    ignore = "needs the shared test assets (NSOD_TEST_MODELS, NSOD_TEST_DATA)"
)]
fn yolo26_end_to_end_matches_ultralytics_on_the_crop() {
    let a = assets();
    let mut det = detector(
        &a,
        "yolo26n-obb_1024_e2e.onnx",
        DetectorConfig {
            slice: SliceMode::Off,
            ..Default::default()
        },
    );
    assert!(det.model.info.layout.is_end_to_end());
    let img = load_image(&a.data.join("P0006_crop1024_x0_y0.png")).unwrap();
    let out = det.detect(&img).unwrap();
    let want = reference(
        &a.data
            .join("parity/ultralytics_yolo26n-obb_1024_e2e__crop1024_x0_y0.json"),
    );
    assert_parity(&out.detections, &want);
}

#[test]
fn dynamic_batch_sizes_give_identical_merged_results() {
    // 2299x2472: 3x3 slices of 1024 (overlap 0.2) and the full-image pass.
    let img = load_image(&nsod_testkit::sample("neon_yell_2019_10cm.png")).unwrap();
    let mut results = Vec::new();
    for batch in [1, 4, 8] {
        let opts = ModelOptions {
            threads: 2,
            ..Default::default()
        };
        let mut det = Detector::new(
            Model::load(runtime(), &nsod_testkit::dynamic_model(), &opts).unwrap(),
            DetectorConfig {
                batch,
                ..Default::default()
            },
        );
        assert_eq!(det.model.info.fixed_batch, None);
        let out = det.detect(&img).unwrap();
        assert_eq!(out.slices, 10, "9 slices + the full-image pass");
        // The full-image pass's minimum rectangle (1024 x 960) is a batch of its own.
        assert_eq!(out.runs, 9usize.div_ceil(batch) + 1);
        results.push(out.detections);
    }
    assert!(
        results[0].len() >= 10,
        "too few detections to compare: {}",
        results[0].len()
    );
    for other in &results[1..] {
        assert_eq!(other.len(), results[0].len());
        for (x, y) in results[0].iter().zip(other) {
            assert_eq!(x.class_id, y.class_id);
            assert!((x.score - y.score).abs() < 1e-4, "{x:?} vs {y:?}");
            assert!(
                rotated_iou(&x.obb.unwrap(), &y.obb.unwrap()) > 0.999,
                "{x:?} vs {y:?}"
            );
        }
    }
    // Every box lies within the image (allowing for rotated corners to stick out a little).
    for d in &results[0] {
        let c = d.obb.unwrap().center();
        assert!(
            (0.0..=2299.0).contains(&c.x) && (0.0..=2472.0).contains(&c.y),
            "{d:?}"
        );
    }
}

#[test]
#[cfg_attr(
    not(nsod_shared_assets),
    ignore = "needs the shared test assets (NSOD_TEST_MODELS, NSOD_TEST_DATA)"
)]
fn axis_aligned_layout_model_runs_end_to_end() {
    let a = assets();
    let mut det = detector(
        &a,
        "yolov8n-doclaynet.onnx",
        DetectorConfig {
            slice: SliceMode::Off,
            conf: 0.1,
            ..Default::default()
        },
    );
    assert!(!det.model.info.layout.is_oriented());
    assert_eq!(det.model.info.names.len(), 11);
    // A synthetic page: white, with a title bar and paragraphs of text-like lines.
    let (w, h) = (850u32, 1100u32);
    let page = image::RgbImage::from_fn(w, h, |x, y| {
        let title = (80..120).contains(&y) && (100..600).contains(&x);
        let para = (200..1000).contains(&y)
            && (y - 200) % 150 < 110
            && (y % 18) < 9
            && (100..750).contains(&x)
            && (x / 7) % 9 != 0;
        if title || para {
            image::Rgb([20, 20, 20])
        } else {
            image::Rgb([255, 255, 255])
        }
    });
    let out = det.detect(&page).unwrap();
    assert!(!out.detections.is_empty(), "no layout element found");
    for d in &out.detections {
        assert!(d.obb.is_none());
        assert!(
            d.bbox.x1 >= 0.0 && d.bbox.y1 >= 0.0 && d.bbox.x2 <= w as f32 && d.bbox.y2 <= h as f32,
            "{d:?}"
        );
        assert!(
            det.model.info.names.as_slice().contains(&d.class_name),
            "{}",
            d.class_name
        );
    }
}

/// An image for the stream: in memory, or read through the [`ImageSource`] interface (as a raster is).
struct StreamTest {
    img: image::RgbImage,
    windowed: bool,
}

impl nsod_detect::StreamImage for StreamTest {
    fn pixels(&self) -> nsod_detect::StreamPixels<'_> {
        if self.windowed {
            nsod_detect::StreamPixels::Source(&self.img)
        } else {
            nsod_detect::StreamPixels::Memory(&self.img)
        }
    }
}

/// The pipelined schedule equals the sequential one image by image, bit for bit: batches that mix slices of
/// several images (dynamic batch 1, 3, 8), minimum rectangles or the model's size, with IoBinding or without, images
/// in memory and read window by window, an image that fails and values passed through, all handed back in input
/// order.
#[test]
fn the_stream_equals_the_sequential_detector_image_by_image() {
    use nsod_detect::{IoMode, StreamInput, StreamOutput};
    use std::ops::ControlFlow;
    let big = load_image(&nsod_testkit::sample("neon_yell_2019_10cm.png")).unwrap();
    let crop = |x, y, w, h| image::imageops::crop_imm(&big, x, y, w, h).to_image();
    let images = [
        (big.clone(), false),
        (crop(0, 0, 640, 480), false),
        (big.clone(), true),
        (image::RgbImage::new(0, 0), false),
        (crop(100, 300, 900, 1200), false),
        (crop(30, 30, 300, 200), true),
    ];
    // Several sessions take the batches in turn, and whichever finishes first, the outputs keep input order and
    // each image's detections equal the sequential ones (with IoBinding asked for, they run from host buffers).
    for (batch, io, rect, sessions) in [
        (1, IoMode::Plain, Rect::Auto, 1),
        (3, IoMode::Plain, Rect::Auto, 1),
        (8, IoMode::Plain, Rect::Auto, 1),
        (3, IoMode::Plain, Rect::Off, 1),
        (3, IoMode::Bound, Rect::Off, 1),
        (1, IoMode::Plain, Rect::Auto, 2),
        (2, IoMode::Plain, Rect::Off, 3),
        (3, IoMode::Bound, Rect::Off, 2),
    ] {
        let opts = ModelOptions {
            threads: 2,
            io,
            ..Default::default()
        };
        let config = DetectorConfig {
            batch,
            rect,
            ..Default::default()
        };
        let model = Model::load(runtime(), &nsod_testkit::dynamic_model(), &opts).unwrap();
        let mut sequential = Detector::new(model.another().unwrap(), config.clone());
        let more = (1..sessions).map(|_| model.another().unwrap()).collect();
        let mut stream = Detector::new(model, config).with_sessions(more);
        let want: Vec<_> = images
            .iter()
            .map(|(img, windowed)| {
                if *windowed {
                    sequential.detect_source(img)
                } else {
                    sequential.detect(img)
                }
            })
            .collect();
        let found: usize = want
            .iter()
            .filter_map(|w| w.as_ref().ok())
            .map(|o| o.detections.len())
            .sum();
        assert!(found >= 10, "too few detections to compare: {found}");
        let mut inputs = Vec::new();
        for (i, (img, windowed)) in images.iter().enumerate() {
            inputs.push(StreamInput::Image(Arc::new(StreamTest {
                img: img.clone(),
                windowed: *windowed,
            })));
            inputs.push(StreamInput::Pass(i));
        }
        let mut got = Vec::new();
        let stats = stream
            .detect_stream(inputs.into_iter(), |out| {
                got.push(out);
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(got.len(), 2 * images.len(), "batch {batch} {io:?}");
        for (i, w) in want.iter().enumerate() {
            let (StreamOutput::Detected(_, g), StreamOutput::Pass(p)) =
                (&got[2 * i], &got[2 * i + 1])
            else {
                panic!("batch {batch}: outputs out of order at image {i}");
            };
            assert_eq!(*p, i);
            match (w, g) {
                (Ok(w), Ok(g)) => {
                    assert_eq!(g.detections, w.detections, "batch {batch} {io:?} image {i}");
                    assert_eq!(
                        (g.slices, g.merge_input, g.sliced),
                        (w.slices, w.merge_input, w.sliced)
                    );
                }
                (Err(w), Err(g)) => assert_eq!(g.to_string(), w.to_string()),
                _ => panic!("batch {batch} image {i}: {w:?} vs {g:?}"),
            }
        }
        // 10 + 1 + 10 + 0 (the empty image) + 3 (2 slices and the full pass) + 1 slices.
        assert_eq!(stats.slices, 25, "batch {batch}");
        // With minimum rectangles a batch holds inputs of one size: in input order, 9 slices of 1024 x 1024 and the
        // full pass (h x w 1024 x 960), the 640 x 480 crop (768 x 1024), again 9 + 1, the 900 x 1200 crop's two
        // slices (1024 x 928) and full pass (1024 x 768), the 300 x 200 crop (704 x 1024): no two neighbours share
        // a size but the slices of one image. Otherwise batches span images.
        let runs = match rect {
            Rect::Off => 25usize.div_ceil(batch),
            _ => 2 * 9usize.div_ceil(batch) + 2usize.div_ceil(batch) + 5,
        };
        assert_eq!(stats.runs, runs, "batch {batch} {rect:?}");
        let slots = if io == IoMode::Bound && sessions == 1 {
            stats.runs * batch
        } else {
            25
        };
        assert_eq!(
            stats.slots, slots,
            "batch {batch} {io:?} sessions {sessions}"
        );
        assert!(stats.peak_images <= nsod_detect::stream::max_images_in_flight(batch, sessions));
        assert!(stats.busy_ratio() > 0.0 && stats.busy_ratio() <= 1.0);
    }
}

/// An interrupt set while two sessions run a stream (from the caller, after its second image) ends the stream with
/// the interrupt error, after the images finished before it and in input order, and never hangs: a session that
/// stops drops its batch, the other stops at its next one, and the prepare stage ends when both have.
#[test]
fn an_interrupt_stops_a_stream_on_two_sessions() {
    use nsod_detect::{StreamInput, StreamOutput};
    use std::ops::ControlFlow;
    use std::sync::atomic::{AtomicBool, Ordering};
    let big = load_image(&nsod_testkit::sample("neon_yell_2019_10cm.png")).unwrap();
    let opts = ModelOptions {
        threads: 1,
        ..Default::default()
    };
    let model = Model::load(runtime(), &nsod_testkit::dynamic_model(), &opts).unwrap();
    let more = vec![model.another().unwrap()];
    let mut stream = Detector::new(model, DetectorConfig::default()).with_sessions(more);
    let flag = Arc::new(AtomicBool::new(false));
    stream.interrupt = Some(flag.clone());
    let inputs = (0..12u32).map(|i| {
        StreamInput::<_, ()>::Image(Arc::new(StreamTest {
            img: image::imageops::crop_imm(&big, 40 * i, 30 * i, 320, 320).to_image(),
            windowed: false,
        }))
    });
    let mut got = 0;
    let e = stream
        .detect_stream(inputs, |out| {
            let StreamOutput::Detected(_, found) = out else {
                panic!("no value was passed");
            };
            assert!(found.is_ok(), "{found:?}");
            got += 1;
            if got == 2 {
                flag.store(true, Ordering::SeqCst);
            }
            ControlFlow::Continue(())
        })
        .unwrap_err();
    assert!(matches!(e, nsod_detect::DetectError::Interrupted), "{e}");
    assert!((2..12).contains(&got), "{got} images before the interrupt");
}

/// Several sessions run an image's batches at once and give exactly the one-session result: the same detections in
/// the same order, the same runs, for an image in memory and one read window by window (the 1054 x 1529 DOTA image
/// in 6 slices of 640 and the full-image pass); an interrupt set before the image stops it with the interrupt
/// error.
#[test]
#[cfg_attr(
    not(nsod_shared_assets),
    ignore = "needs the shared test assets (NSOD_TEST_MODELS, NSOD_TEST_DATA)"
)]
fn two_sessions_give_the_result_of_one() {
    let img = load_image(&assets().data.join("dota_P0006.png")).unwrap();
    let config = DetectorConfig {
        slice: SliceMode::Size(640),
        ..Default::default()
    };
    let opts = ModelOptions {
        threads: 1,
        ..Default::default()
    };
    let model = Model::load(runtime(), &nsod_testkit::default_model(), &opts).unwrap();
    let mut one = Detector::new(model.another().unwrap(), config.clone());
    let more = vec![model.another().unwrap()];
    let mut two = Detector::new(model, config).with_sessions(more);
    assert_eq!((one.sessions(), two.sessions()), (1, 2));
    for windowed in [false, true] {
        let (want, got) = if windowed {
            (
                one.detect_source(&img).unwrap(),
                two.detect_source(&img).unwrap(),
            )
        } else {
            (one.detect(&img).unwrap(), two.detect(&img).unwrap())
        };
        assert!(want.detections.len() >= 100, "{}", want.detections.len());
        assert_eq!(got.detections, want.detections, "windowed {windowed}");
        assert_eq!(
            (
                got.slices,
                got.runs,
                got.merge_input,
                got.run_durations.len()
            ),
            (
                want.slices,
                want.runs,
                want.merge_input,
                want.run_durations.len()
            ),
            "windowed {windowed}"
        );
        assert_eq!(got.runs, 7, "6 slices and the full-image pass");
    }
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(true));
    two.interrupt = Some(flag);
    let e = two.detect(&img).unwrap_err();
    assert!(matches!(e, nsod_detect::DetectError::Interrupted), "{e}");
}
