//! The rules worker as its own executable, for this crate's tests and for embedders that do not ship the `nsod`
//! binary (which answers to `nsod rules-worker` with the same code).

fn main() -> std::process::ExitCode {
    nsod_symbolic::worker::main()
}
