//! `nsod doctor`: what this installation would run with.

use crate::{
    cli::{DoctorArgs, GlobalArgs},
    paths,
};
use nsod_runtime::{EXPECTED_VERSION, Runtime};
use std::process::ExitCode;

pub fn run(global: &GlobalArgs, args: &DoctorArgs) -> anyhow::Result<ExitCode> {
    println!("nsod {}", env!("CARGO_PKG_VERSION"));
    println!("cpu: {}", cpu_int8());
    let runtime = Runtime::load(global.ort_lib.as_deref()).map(std::sync::Arc::new);
    match &runtime {
        Ok(rt) => {
            let version = rt.version();
            let note = if version == EXPECTED_VERSION {
                String::new()
            } else {
                format!(" (nsod is tested with {EXPECTED_VERSION})")
            };
            println!(
                "onnxruntime: {version} found at {} (via {}){note}",
                rt.path.display(),
                rt.source
            );
            for a in &rt.skipped {
                if a.path.is_some() {
                    println!("  skipped {a}");
                }
            }
            match rt.available_providers() {
                Ok(eps) => {
                    println!("execution providers: {}", eps.join(", "));
                    if !eps.iter().any(|e| e == "CUDAExecutionProvider") {
                        println!(
                            "  CUDA: not in this ONNX Runtime build (use the library of onnxruntime-gpu=={EXPECTED_VERSION} for --device cuda)"
                        );
                    }
                }
                Err(e) => println!("execution providers: unknown ({e})"),
            }
        }
        Err(_) => println!("onnxruntime: not found (see the error below)"),
    }
    match nsod_gpu::Gpus::open().and_then(|g| Ok((g.driver_version()?, g.readings()?))) {
        Ok((driver, gpus)) if !gpus.is_empty() => {
            println!("gpus (NVML, driver {driver}):");
            for g in gpus {
                let mem = g.memory_total_bytes.map_or_else(
                    || "?".into(),
                    |b| format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
                );
                println!("  {}: {} ({mem})", g.index, g.name);
            }
        }
        Ok((driver, _)) => println!("gpus: none (NVML driver {driver} sees no device)"),
        Err(e) => println!("gpus: none ({e})"),
    }
    // The model a run takes without --model: $NSOD_MODEL (as the settings' environment layer reads it), else the
    // committed default.
    let from_env = std::env::var_os("NSOD_MODEL")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from);
    let (model, model_ok) = match (&args.model, &from_env) {
        (Some(m), _) => (m.clone(), m.is_file()),
        (None, Some(m)) => (m.clone(), m.is_file()),
        (None, None) => paths::default_model(),
    };
    println!(
        "{}model: {}{}{}",
        if args.model.is_some() { "" } else { "default " },
        model.display(),
        if args.model.is_none() && from_env.is_some() {
            " (via NSOD_MODEL)"
        } else {
            ""
        },
        match (model_ok, args.model.is_some() || from_env.is_some()) {
            (true, _) => "",
            (false, true) => " (missing)",
            (false, false) =>
                " (missing: git checkout -- models/yolov8n-obb.onnx, or set NSOD_MODEL)",
        }
    );
    if let (Ok(rt), true) = (&runtime, model_ok) {
        if args.model.is_some() {
            describe_model(rt, &model);
        }
        probe_model(rt, &model);
    }
    let drivers = nsod_raster::available_drivers();
    println!(
        "gdal: {} (raster drivers: {})",
        nsod_raster::gdal_version(),
        if drivers.is_empty() {
            "none".into()
        } else {
            drivers.join(", ")
        }
    );
    #[cfg(feature = "video")]
    println!("video: FFmpeg {}", nsod_pipeline::video::describe());
    #[cfg(not(feature = "video"))]
    println!("video: not built (cargo feature `video`: FFmpeg's libraries)");
    let (rules, rules_ok) = paths::default_rules();
    println!(
        "default rules: {}{}",
        rules.display(),
        if rules_ok { "" } else { " (missing)" }
    );
    // The rules worker confines itself; say what this kernel lets it enforce, and try what it must block.
    let probe = crate::session::sandbox()
        .map_err(|e| format!("{e:#}"))
        .and_then(|sb| {
            let scratch = std::env::temp_dir().join(format!("nsod-doctor-{}", std::process::id()));
            std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
            let r = nsod_symbolic::probe(&sb, Some(&scratch));
            let _ = std::fs::remove_dir_all(&scratch);
            r
        });
    match probe {
        Ok(r) => println!("rules sandbox: {}", nsod_symbolic::sandbox::describe(&r)),
        Err(e) => println!("rules sandbox: cannot start the rules worker: {e}"),
    }
    match runtime {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.into()),
    }
}

/// The CPU's instructions for INT8 models (`nsod quantize`), from /proc/cpuinfo's flags.
fn cpu_int8() -> String {
    cpu_int8_of(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default())
}

/// [`cpu_int8`] of a /proc/cpuinfo text.
fn cpu_int8_of(cpuinfo: &str) -> String {
    let flags: std::collections::BTreeSet<String> = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, f)| f.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    if flags.is_empty() {
        return "instruction flags unknown (no /proc/cpuinfo flags)".into();
    }
    let have: Vec<&str> = [
        ("avx2", "AVX2"),
        ("avx512_vnni", "AVX-512 VNNI"),
        ("avx_vnni", "AVX-VNNI"),
        ("amx_int8", "AMX-INT8"),
    ]
    .into_iter()
    .filter(|(f, _)| flags.contains(*f))
    .map(|(_, name)| name)
    .collect();
    let vnni =
        flags.contains("avx512_vnni") || flags.contains("avx_vnni") || flags.contains("amx_int8");
    format!(
        "{}{}",
        if have.is_empty() {
            "none of AVX2, AVX-512 VNNI, AVX-VNNI, AMX-INT8".to_owned()
        } else {
            have.join(", ")
        },
        if vnni {
            ""
        } else {
            "; warning: no VNNI, so INT8 models' u8 x s8 products can saturate: quantise with nsod quantize --reduce-range"
        }
    )
}

/// `--model FILE`: the model's task, classes, input and provenance.
fn describe_model(rt: &std::sync::Arc<Runtime>, model: &std::path::Path) {
    match nsod_detect::Model::load(rt, model, &nsod_detect::ModelOptions::default()) {
        Ok(m) => {
            let i = &m.info;
            println!(
                "  task {}, {} classes, input {} {}x{}, layout {:?}",
                i.metadata
                    .task
                    .map_or_else(|| "unknown".to_owned(), |t| format!("{t:?}").to_lowercase()),
                i.names.len(),
                i.input_name,
                i.input_hw.1,
                i.input_hw.0,
                i.layout
            );
            match &i.metadata.quantized {
                Some(q) => println!("  quantized by nsod quantize: {q}"),
                None => println!("  not quantized by nsod quantize (float, or made elsewhere)"),
            }
        }
        Err(e) => println!("  cannot be loaded: {}", nsod_pipeline::error_chain(&e)),
    }
}

/// Runs the default model once on the CPU, and on CUDA when this ONNX Runtime has the provider, and says which
/// providers actually ran its nodes (from ONNX Runtime's profile of that run), or why CUDA cannot be used.
fn probe_model(rt: &std::sync::Arc<Runtime>, model: &std::path::Path) {
    let mut devices = vec![nsod_detect::Device::Cpu];
    if rt
        .available_providers()
        .is_ok_and(|eps| eps.iter().any(|e| e == "CUDAExecutionProvider"))
    {
        devices.push(nsod_detect::Device::Cuda(0));
    }
    for device in devices {
        let name = match device {
            nsod_detect::Device::Cpu => "cpu".to_owned(),
            nsod_detect::Device::Cuda(id) => format!("cuda:{id}"),
        };
        let opts = nsod_detect::ModelOptions {
            device,
            ..Default::default()
        };
        let ran = nsod_detect::Model::load(rt, model, &opts).and_then(|mut m| {
            let t = std::time::Instant::now();
            let placements = m.probe()?.clone();
            Ok((placements, t.elapsed().as_secs_f64()))
        });
        match ran {
            Ok((Ok(p), secs)) => println!(
                "model run on {name}: {} ({secs:.2} s, the first run)",
                p.iter()
                    .map(|p| format!("{} ran {} nodes", p.provider, p.nodes))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Ok((Err(e), _)) => println!("model run on {name}: ran; providers unknown ({e})"),
            Err(e) => println!(
                "model run on {name}: cannot run: {}",
                nsod_pipeline::error_chain(&e)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::cpu_int8_of;

    #[test]
    fn int8_instructions_are_named_and_a_cpu_without_vnni_is_warned() {
        let info =
            |flags: &str| format!("processor\t: 0\nflags\t\t: fpu sse2 {flags}\nbugs\t\t: \n");
        assert_eq!(
            cpu_int8_of(&info("avx2 avx512f avx512_vnni amx_int8 amx_tile")),
            "AVX2, AVX-512 VNNI, AMX-INT8"
        );
        assert_eq!(cpu_int8_of(&info("avx2 avx_vnni")), "AVX2, AVX-VNNI");
        assert_eq!(
            cpu_int8_of(&info("avx2 avx512f")),
            "AVX2; warning: no VNNI, so INT8 models' u8 x s8 products can saturate: quantise with nsod quantize --reduce-range"
        );
        assert!(
            cpu_int8_of(&info(""))
                .starts_with("none of AVX2, AVX-512 VNNI, AVX-VNNI, AMX-INT8; warning: no VNNI"),
            "{}",
            cpu_int8_of(&info(""))
        );
        assert_eq!(
            cpu_int8_of("processor\t: 0\n"),
            "instruction flags unknown (no /proc/cpuinfo flags)"
        );
    }
}
