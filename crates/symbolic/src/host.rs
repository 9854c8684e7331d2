//! nsod's side of the rules worker: starting it, talking to it with a wall-clock timeout, and killing it.

use crate::protocol::{Request, Response, WorkerLimits};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How to start a rules worker: by default the running `nsod` binary with its hidden `rules-worker` subcommand.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl WorkerCommand {
    pub fn new(
        program: impl Into<PathBuf>,
        args: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Self {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// The running executable with `rules-worker` (what the `nsod` binary answers to).
    pub fn current_exe() -> std::io::Result<Self> {
        Ok(Self::new(std::env::current_exe()?, ["rules-worker"]))
    }
}

/// Bounds on everything a rule base may cause (rule bases are untrusted input).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Address space of the worker process.
    pub memory_bytes: u64,
    /// CPU time of one worker process (the worker is replaced before it could run out in normal use).
    pub cpu_seconds: u64,
    /// Wall-clock limit of loading and compiling a rule base.
    pub load_timeout: Duration,
    /// Wall-clock limit of one image's scene query.
    pub query_timeout: Duration,
    /// Inference limit of loading and of each compile query.
    pub load_inferences: u64,
    /// Inference limit of one image's scene query.
    pub query_inferences: u64,
    /// Scene queries one worker answers before it is replaced (scryer leaks a little per query).
    pub queries_per_worker: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 1 << 30,
            cpu_seconds: 300,
            load_timeout: Duration::from_secs(5),
            query_timeout: Duration::from_secs(2),
            load_inferences: 10_000_000,
            query_inferences: 5_000_000,
            queries_per_worker: 1000,
        }
    }
}

impl Limits {
    pub(crate) fn worker(&self) -> WorkerLimits {
        WorkerLimits {
            memory_bytes: self.memory_bytes,
            cpu_seconds: self.cpu_seconds,
            load_inferences: self.load_inferences,
            query_inferences: self.query_inferences,
        }
    }
}

/// How rule bases are run: which worker, under which limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Sandbox {
    pub worker: WorkerCommand,
    pub limits: Limits,
}

impl Sandbox {
    /// The running `nsod` binary as worker, default limits.
    pub fn current_exe() -> std::io::Result<Self> {
        Ok(Self {
            worker: WorkerCommand::current_exe()?,
            limits: Limits::default(),
        })
    }

    pub fn new(worker: WorkerCommand) -> Self {
        Self {
            worker,
            limits: Limits::default(),
        }
    }
}

/// Why talking to the worker failed.
#[derive(Debug)]
pub(crate) enum Failure {
    Spawn(std::io::Error),
    Timeout(Duration),
    /// The worker exited or was killed; with the end of what it wrote to stderr.
    Died(Option<ExitStatus>, String),
    Protocol(String),
}

impl Failure {
    pub(crate) fn describe(&self, limits: &Limits) -> String {
        match self {
            Self::Spawn(e) => format!("cannot start the rules worker: {e}"),
            Self::Timeout(t) => format!(
                "did not finish within {:.1} s (a rule or directive that never ends?); the rules worker was killed",
                t.as_secs_f64()
            ),
            Self::Died(status, stderr) => {
                let memory = stderr.contains("memory allocation")
                    || stderr.contains("out of memory")
                    || stderr.contains("Cannot allocate");
                let how = match status {
                    Some(s) => describe_status(s),
                    None => "stopped".into(),
                };
                let mut m = if memory {
                    format!(
                        "the rules worker ran out of memory (limit {} MiB) and {how}",
                        limits.memory_bytes >> 20
                    )
                } else {
                    format!("the rules worker {how}")
                };
                if let Some(last) = stderr.lines().rev().find(|l| !l.trim().is_empty()) {
                    let last: String = last.chars().take(200).collect();
                    m.push_str(&format!(" ({})", last.trim()));
                }
                m
            }
            Self::Protocol(e) => format!("the rules worker answered nonsense: {e}"),
        }
    }

    pub(crate) fn is_limit(&self) -> bool {
        matches!(self, Self::Timeout(_))
            || matches!(self, Self::Died(_, e) if e.contains("memory allocation") || e.contains("out of memory"))
            || matches!(self, Self::Died(Some(s), _) if {
                use std::os::unix::process::ExitStatusExt;
                s.signal() == Some(libc::SIGXCPU)
            })
    }
}

fn describe_status(s: &ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exited with code {c}"),
        (_, Some(sig)) => {
            let name = nix::sys::signal::Signal::try_from(sig)
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|_| format!("signal {sig}"));
            let why = match sig {
                libc::SIGXCPU => " (CPU-time limit)",
                libc::SIGABRT => " (aborted)",
                libc::SIGSEGV => " (crashed)",
                libc::SIGKILL => " (killed)",
                libc::SIGSYS => " (forbidden system call)",
                _ => "",
            };
            format!("was stopped by {name}{why}")
        }
        _ => "stopped".into(),
    }
}

/// A running worker process.
#[derive(Debug)]
pub(crate) struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<std::io::Result<String>>,
    stderr: Arc<Mutex<String>>,
    /// Scene queries answered.
    pub(crate) queries: usize,
}

/// Bytes of the worker's stderr kept for error messages.
const STDERR_TAIL: usize = 4096;

impl Worker {
    pub(crate) fn spawn(cmd: &WorkerCommand) -> Result<Self, Failure> {
        let mut child = Command::new(&cmd.program)
            .args(&cmd.args)
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(Failure::Spawn)?;
        let (Some(stdin), Some(stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Failure::Protocol("no pipes to the worker".into()));
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("nsod-rules-out".into())
            .spawn(move || {
                let mut out = BufReader::new(stdout);
                loop {
                    let (line, stop) = match read_line(&mut out, MAX_ANSWER) {
                        Ok(Some(l)) => (Ok(l), false),
                        Ok(None) => break,
                        Err(e) => (Err(e), true),
                    };
                    if tx.send(line).is_err() || stop {
                        break;
                    }
                }
            })
            .map_err(Failure::Spawn)?;
        let tail = Arc::new(Mutex::new(String::new()));
        let t = tail.clone();
        std::thread::Builder::new()
            .name("nsod-rules-err".into())
            .spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = stderr.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut s) = t.lock() {
                        s.push_str(&String::from_utf8_lossy(&buf[..n]));
                        if s.len() > STDERR_TAIL {
                            let mut cut = s.len() - STDERR_TAIL;
                            while !s.is_char_boundary(cut) {
                                cut += 1;
                            }
                            s.drain(..cut);
                        }
                    }
                }
            })
            .map_err(Failure::Spawn)?;
        Ok(Self {
            child,
            stdin: Some(stdin),
            lines: rx,
            stderr: tail,
            queries: 0,
        })
    }

    /// Sends one request and waits for its answer at most `timeout`; on timeout or death the worker is killed.
    pub(crate) fn call(&mut self, req: &Request, timeout: Duration) -> Result<Response, Failure> {
        self.send(req)?;
        self.receive(timeout)
    }

    /// Sends a request without waiting (the caller works meanwhile, then calls [`Worker::receive`]).
    pub(crate) fn send(&mut self, req: &Request) -> Result<(), Failure> {
        let line = serde_json::to_string(req).map_err(|e| Failure::Protocol(e.to_string()))?;
        let written = match self.stdin.as_mut() {
            Some(w) => writeln!(w, "{line}").and_then(|()| w.flush()),
            None => Err(std::io::Error::other("worker input closed")),
        };
        if written.is_err() {
            return Err(self.died());
        }
        Ok(())
    }

    /// The answer to the last request sent, waiting at most `timeout` from now.
    pub(crate) fn receive(&mut self, timeout: Duration) -> Result<Response, Failure> {
        match self.lines.recv_timeout(timeout) {
            Ok(Ok(answer)) => {
                serde_json::from_str(&answer).map_err(|e| Failure::Protocol(e.to_string()))
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                self.kill();
                Err(Failure::Protocol(e.to_string()))
            }
            Ok(Err(_)) | Err(RecvTimeoutError::Disconnected) => Err(self.died()),
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                Err(Failure::Timeout(timeout))
            }
        }
    }

    fn died(&mut self) -> Failure {
        // The worker closed its output: collect its status (it may still be exiting).
        let mut status = None;
        for _ in 0..200 {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    status = Some(s);
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => break,
            }
        }
        if status.is_none() {
            self.kill();
            status = self.child.try_wait().ok().flatten();
        }
        // Give the stderr reader a moment to drain.
        std::thread::sleep(Duration::from_millis(20));
        let stderr = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        Failure::Died(status, stderr)
    }

    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The longest answer line read from a worker (a compiled rule table or one image's adjustments are far smaller):
/// a worker that writes more is killed, so its output cannot make nsod allocate without bound.
pub const MAX_ANSWER: usize = 64 << 20;

/// One line of at most `max` bytes without its newline; `None` at the end; `InvalidData` for a longer line or one
/// that is not UTF-8.
fn read_line(r: &mut impl BufRead, max: usize) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = r.take(max as u64 + 1).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
    } else if buf.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("the worker wrote a line longer than {max} bytes"),
        ));
    }
    String::from_utf8(buf).map(Some).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the worker wrote a line that is not UTF-8",
        )
    })
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing stdin ends a healthy worker; kill covers one that is busy.
        drop(self.stdin.take());
        for _ in 0..20 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::read_line;
    use std::io::Cursor;

    #[test]
    fn answer_lines_are_bounded() {
        let mut r = Cursor::new(b"{\"a\":1}\nlast".to_vec());
        assert_eq!(read_line(&mut r, 16).unwrap().as_deref(), Some("{\"a\":1}"));
        assert_eq!(read_line(&mut r, 16).unwrap().as_deref(), Some("last"));
        assert_eq!(read_line(&mut r, 16).unwrap(), None);
        // Exactly the limit is read; one byte more is refused without reading the rest.
        let mut r = Cursor::new([vec![b'x'; 16], b"\n".to_vec()].concat());
        assert_eq!(read_line(&mut r, 16).unwrap().map(|l| l.len()), Some(16));
        let mut r = Cursor::new(vec![b'x'; 1 << 20]);
        let e = read_line(&mut r, 16).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(
            e.to_string(),
            "the worker wrote a line longer than 16 bytes"
        );
        assert!(r.position() <= 17, "read {} bytes", r.position());
        let e = read_line(&mut Cursor::new(b"\xff\xfe\n".to_vec()), 16).unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }
}
