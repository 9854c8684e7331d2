//! `nsod train-monitor`: follow an Ultralytics run directory (and optionally run the training command) and export
//! its progress on the metrics endpoint.

use crate::cli::TrainArgs;
use crate::metrics::MetricsSession;
use nsod_telemetry::catalog::ModelLabel;
use nsod_train::{RunArgs, RunWatcher};
use std::process::{Child, Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

fn model_name(a: &TrainArgs) -> String {
    if let Some(m) = &a.model {
        return m.clone();
    }
    // The run folder's name (Ultralytics' `name`, e.g. runs/obb/train3 -> train3), which is what dashboards show.
    a.run_dir
        .file_name()
        .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned())
}

/// SIGINT and SIGTERM flags (kept apart so the same signal can be forwarded to the child); a second signal of
/// the same kind ends nsod at once.
fn signal_flags() -> [(i32, Arc<AtomicBool>); 2] {
    [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM].map(|sig| {
        let flag = Arc::new(AtomicBool::new(false));
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, flag.clone());
        let _ = signal_hook::flag::register(sig, flag.clone());
        (sig, flag)
    })
}

fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => (c & 0xff) as u8,
        (None, Some(s)) => (128 + s).min(255) as u8,
        _ => 1,
    }
}

pub fn run(a: &TrainArgs) -> anyhow::Result<ExitCode> {
    let signals = signal_flags();
    let any_signal = || signals.iter().any(|(_, f)| f.load(Ordering::SeqCst));
    let model = model_name(a);
    let layers = match crate::settings::layers(&a.config, &a.settings) {
        Ok(l) => l,
        Err(e) => return crate::session::config_error(e),
    };
    if a.config.print_config {
        print!("{}", crate::settings::print_config(&layers));
        return Ok(ExitCode::SUCCESS);
    }
    let session = match MetricsSession::start(&layers.config.metrics, "none") {
        Ok(Some(s)) => s,
        Ok(None) => {
            crate::ui::error!(
                "train-monitor exports metrics: drop --no-metrics or add --pushgateway / --metrics-textfile"
            );
            return Ok(ExitCode::from(2));
        }
        Err(e) => {
            crate::ui::error!("{e:#}");
            return Ok(ExitCode::from(2));
        }
    };
    let telemetry = session.telemetry.clone();
    let label = ModelLabel {
        model: model.clone(),
    };
    let mut child: Option<Child> = match a.command.split_first() {
        None => None,
        Some((prog, args)) => match Command::new(prog).args(args).spawn() {
            Ok(c) => {
                telemetry
                    .metrics
                    .training
                    .process_up
                    .get_or_create(&label)
                    .set(1);
                // The CPU counter exists from the start at 0 (a process may idle before using CPU).
                let _ = telemetry.metrics.training.process_cpu.get_or_create(&label);
                Some(c)
            }
            Err(e) => {
                crate::ui::error!("cannot run {prog}: {e}");
                return Ok(ExitCode::from(2));
            }
        },
    };
    if !a.run_dir.is_dir() {
        crate::ui::info!(
            "train-monitor: waiting for {} to appear",
            a.run_dir.display()
        );
    } else if let Ok(text) = std::fs::read_to_string(a.run_dir.join("args.yaml")) {
        let args = RunArgs::parse(&text);
        crate::ui::info!(
            "train-monitor: following {} ({} epochs planned)",
            a.run_dir.display(),
            args.epochs.map_or_else(|| "?".into(), |e| e.to_string())
        );
    }
    session.set_ready();
    let mut watcher = RunWatcher::new(&a.run_dir);
    let train_metrics = nsod_telemetry::TrainMetrics::new(&telemetry, &model);
    let mut poll = || {
        let (report, updates) = watcher.poll();
        updates.iter().for_each(|u| train_metrics.apply(u));
        report
    };
    let mut sys = System::new();
    let mut last_cpu = 0.0f64;
    let mut forwarded = [false; 2];
    let mut code: u8 = 0;
    loop {
        let report = poll();
        if report.new_run {
            crate::ui::info!("train-monitor: results.csv was replaced: a new run, series reset");
        }
        if let Some(c) = child.as_mut() {
            // Forward each signal once; nsod exits when the child does.
            for (k, (sig, flag)) in signals.iter().enumerate() {
                if flag.load(Ordering::SeqCst) && !forwarded[k] {
                    forwarded[k] = true;
                    if let Ok(s) = nix::sys::signal::Signal::try_from(*sig) {
                        let _ =
                            nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), s);
                    }
                }
            }
            let pid = Pid::from_u32(c.id());
            sys.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                true,
                ProcessRefreshKind::nothing().with_cpu().with_memory(),
            );
            if let Some(p) = sys.process(pid) {
                let cpu = p.accumulated_cpu_time() as f64 / 1000.0;
                if cpu > last_cpu {
                    telemetry
                        .metrics
                        .training
                        .process_cpu
                        .get_or_create(&label)
                        .inc_by(cpu - last_cpu);
                    last_cpu = cpu;
                }
                telemetry
                    .metrics
                    .training
                    .process_memory
                    .get_or_create(&label)
                    .set(p.memory() as f64);
            }
            if let Ok(Some(status)) = c.try_wait() {
                // What the training wrote last, all of it (MAX_READ a poll; bounded at 64 GiB).
                for _ in 0..8192 {
                    if !poll().more {
                        break;
                    }
                }
                telemetry
                    .metrics
                    .training
                    .process_up
                    .get_or_create(&label)
                    .set(0);
                code = exit_code(status);
                crate::ui::info!("train-monitor: the training command exited with {code}");
                break;
            }
        } else if any_signal() {
            break;
        }
        let end = Instant::now() + a.poll_interval;
        while Instant::now() < end && (child.is_some() || !any_signal()) {
            std::thread::sleep(Duration::from_millis(20).min(a.poll_interval));
            if child.is_some() && any_signal() && forwarded.iter().all(|f| !f) {
                break;
            }
        }
    }
    let flag = AtomicBool::new(any_signal());
    session.finish(&flag);
    Ok(ExitCode::from(code))
}
