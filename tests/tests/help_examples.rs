//! Every subcommand of both binaries, as a person meets it: `--help` shows
//! an example. Subcommands are found by reading the help itself, so a new
//! subcommand without an example fails here.

use std::collections::VecDeque;

use anyhow::{Result, bail};
use handbereik_tests::run;

/// The subcommand names listed under "Commands:" in a help text.
fn subcommands(help: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_commands = false;
    for line in help.lines() {
        if line.trim_end() == "Commands:" {
            in_commands = true;
            continue;
        }
        if in_commands {
            // Entries are indented by two spaces; descriptions wrap deeper.
            let Some(entry) = line.strip_prefix("  ") else {
                break;
            };
            if entry.starts_with(' ') {
                continue;
            }
            if let Some(name) = entry.split_whitespace().next()
                && name != "help"
            {
                names.push(name.to_string());
            }
        }
    }
    names
}

fn check(binary: &str) -> Result<usize> {
    let cwd = std::env::temp_dir();
    let mut queue: VecDeque<Vec<String>> = VecDeque::from([Vec::new()]);
    let mut checked = 0;
    let mut missing = Vec::new();
    while let Some(path) = queue.pop_front() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = run(binary, &cwd, &args)?.ok()?;
        if !out.stdout.contains("Example") {
            missing.push(format!("{binary} {}", path.join(" ")));
        }
        checked += 1;
        for name in subcommands(&out.stdout) {
            let mut next = path.clone();
            next.push(name);
            queue.push_back(next);
        }
    }
    if !missing.is_empty() {
        bail!("--help without an example: {missing:?}");
    }
    Ok(checked)
}

#[test]
fn every_handbereik_subcommand_has_an_example() -> Result<()> {
    // The top level, 12 subcommands and 3 under `registry` and `audit`.
    let checked = check("handbereik")?;
    assert!(checked >= 16, "only {checked} help texts found");
    Ok(())
}

#[test]
fn every_handbereik_keys_subcommand_has_an_example() -> Result<()> {
    let checked = check("handbereik-keys")?;
    assert!(checked >= 10, "only {checked} help texts found");
    Ok(())
}

#[test]
fn the_commands_list_is_read() {
    let help = "Usage: x\n\nCommands:\n  init   Make\n         wrapped\n  run    Run\n  help   Print\n\nOptions:\n  -h\n";
    assert_eq!(subcommands(help), ["init", "run"]);
}
