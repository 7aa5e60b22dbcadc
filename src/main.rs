//! The `perfsize` command; everything lives in the library.

fn main() -> std::process::ExitCode {
    perfsize::cli::main()
}
