//! `confab`: the operator's command. See `confab --help`.

mod cli;
mod commands;

fn main() -> std::process::ExitCode {
    cli::main()
}
