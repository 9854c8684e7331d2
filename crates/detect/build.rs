//! Only for the tests: `cfg(nsod_shared_assets)` runs the tests on the shared models (see nsod-testkit).
fn main() {
    nsod_testkit::emit_shared_assets_cfg();
}
