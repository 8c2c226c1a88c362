//! The edge that both CLIs share: how arguments are parsed and errors printed.
//!
//! Every failure, whether clap refuses an argument or a command fails, ends
//! the same way: one line `error: ...` on stderr and exit code 2, never a
//! panic or a stack trace. `--help` and `--version` print as usual and exit 0.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

/// The exit code for every refused input.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Parses the process arguments, or prints one error line and exits 2.
pub fn parse_args<T: Parser>() -> T {
    match T::try_parse() {
        Ok(args) => args,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            e.exit()
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        Err(e) => {
            // clap spreads one error over several lines; keep what comes before "Usage:".
            let rendered = e.render().to_string();
            let message = rendered
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!("{message} (see --help)");
            std::process::exit(i32::from(EXIT_BAD_INPUT));
        }
    }
}

/// Turns a command's result into the process exit code, printing an error on one line.
pub fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let line = format!("{err:#}").replace('\n', " ");
            eprintln!("error: {line}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}
