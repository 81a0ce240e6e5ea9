//! Every command line the README's "The `edw` command" block shows parses with the real `edw`
//! argument parser: its synopsis expanded with every optional part included, the first of each
//! set of alternatives, and an example value for each placeholder. A flag renamed or removed
//! without the README following fails here, naming the line.

use clap::Parser;
use edw_cli::Cli;

const README: &str = include_str!("../../../../README.md");

/// The lines of the first code block after the `## The `edw` command` heading.
fn command_lines() -> Vec<&'static str> {
    let section = README
        .split_once("## The `edw` command")
        .expect("the README's command section")
        .1;
    let block = section.split("```").nth(1).expect("its code block");
    block
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("edw "))
        .collect()
}

/// One concrete command line for a synopsis line.
fn expand(line: &str) -> Vec<String> {
    let line = line.split("   #").next().unwrap_or(line);
    let line = line.split("  #").next().unwrap_or(line);
    // Alternatives inside a bracket: "[--count N | --rate R]" keeps the first.
    let mut text = String::new();
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        text.push_str(&rest[..open]);
        let mut depth = 0;
        let mut close = open;
        for (i, c) in rest[open..].char_indices() {
            match c {
                '[' => depth += 1,
                ']' => {
                    depth -= 1;
                    if depth == 0 {
                        close = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let inner = &rest[open + 1..close];
        let first = inner.split(" | ").next().unwrap_or(inner);
        text.push(' ');
        text.push_str(&first.replace(['[', ']'], " "));
        text.push(' ');
        rest = &rest[close + 1..];
    }
    text.push_str(rest);
    text.split_whitespace()
        .map(|word| {
            let word = if !word.starts_with('-') && word.contains('|') {
                word.split('|').next().unwrap_or(word)
            } else {
                word
            };
            match word {
                "ID" => "00000000-0000-0000-0000-000000000000".to_owned(),
                "N" | "C" => "4".to_owned(),
                "R" => "5".to_owned(),
                "1-32" => "32".to_owned(),
                other => other.to_owned(),
            }
        })
        .collect()
}

#[test]
fn every_command_in_the_readme_parses() {
    let lines = command_lines();
    assert!(lines.len() >= 15, "the README's command block: {lines:?}");
    for line in lines {
        let argv = expand(line);
        if let Err(error) = Cli::try_parse_from(&argv) {
            panic!("README: `{line}`\nas {argv:?}\n{error}");
        }
    }
}

#[test]
fn a_changed_flag_would_be_caught() {
    // The check is not vacuous: a flag the parser does not know fails it.
    let argv = expand("edw run [--no-such-flag 3]");
    assert!(Cli::try_parse_from(&argv).is_err(), "{argv:?}");
    assert_eq!(
        expand("edw deploy|validate --target local|kube [--count N | --rate R]"),
        ["edw", "deploy", "--target", "local", "--count", "4"]
    );
}
