//! The rules worker for this crate's tests (the `nsod` binary answers to `nsod rules-worker` with the same code).

fn main() -> std::process::ExitCode {
    nsod_symbolic::worker::main()
}
