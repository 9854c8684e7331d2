//! The rules worker for the benchmarks (the `nsod` binary is not built by this package; this is the same code
//! `nsod rules-worker` runs).

fn main() -> std::process::ExitCode {
    nsod_symbolic::worker::main()
}
