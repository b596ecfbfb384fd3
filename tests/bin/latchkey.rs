//! The `latchkey` binary, built inside the tests package so black-box CLI tests can run it
//! (Cargo gives integration tests the path of their own package's binaries only).
fn main() -> std::process::ExitCode {
    latchkey::cli::main()
}
