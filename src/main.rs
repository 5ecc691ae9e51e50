use std::process::ExitCode;

fn main() -> ExitCode {
    milink::cli::main()
}
