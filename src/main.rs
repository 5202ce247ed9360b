//! The `wh` binary: parse arguments, run, report the error, exit.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let _failpoints = wh::failpoint::setup();
    let cli = wh::cli::Cli::parse();
    let root = cli.shared.project_dir.clone();
    match wh::commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprint!("{}", wh::error::render(&err, &root));
            ExitCode::from(err.exit_code())
        }
    }
}
