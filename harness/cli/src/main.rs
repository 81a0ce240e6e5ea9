//! The `edw` command: see `edw --help` and the README.

fn main() -> std::process::ExitCode {
    edw_cli::main()
}
