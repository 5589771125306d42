//! The `stategate` binary: parses arguments, calls a front door, maps its verdict to an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use stategate::cli::check::{CheckArgs, run_check};
use stategate::cli::diff::{DiffArgs, run_diff};
use stategate::cli::hook::{
    PreReceiveArgs, install_pre_commit, install_pre_receive, run_pre_receive,
};

// The global allocator is mimalloc, declared by regorus (feature `allocator-memory-limits`): glibc's
// allocator spent a third of a corpus-wide check in malloc/free and arena growth across the worker
// threads, and regorus' build of it counts the bytes that bound a policy's memory.

#[derive(Parser)]
#[command(
    name = "stategate",
    version,
    about = "A policy gate for GitOps repositories"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check changed desired state: schemas, policies; exit 0 pass, 1 blocked, 2 undecided.
    Check(CheckArgs),
    /// Run the policies' unit tests (`test_*` rules), like `opa test`.
    Verify {
        /// Directory of `.rego` files (default: policies/).
        dir: Option<std::path::PathBuf>,
    },
    /// Dry-run diff of desired state between two revisions.
    Diff {
        #[arg(long)]
        base: String,
        #[arg(long)]
        head: Option<String>,
        #[arg(long, value_enum, default_value_t = DiffFormat::Human)]
        format: DiffFormat,
    },
    /// GitHub front door (the Action's entry point; reads the GITHUB_* variables).
    Github {
        #[command(subcommand)]
        command: GithubCommand,
    },
    /// Git hooks.
    Hook {
        #[command(subcommand)]
        command: HookCommand,
    },
}

#[derive(Subcommand)]
enum HookCommand {
    /// Install stategate as a hook.
    Install {
        /// Write `.git/hooks/pre-commit` running `stategate check --staged`.
        #[arg(long)]
        pre_commit: bool,
        /// Write `hooks/pre-receive` of this (bare) repository, running `stategate hook pre-receive`.
        #[arg(long, conflicts_with = "pre_commit")]
        repo: Option<std::path::PathBuf>,
        /// With --repo: the branch whose rules judge new refs, when HEAD names another.
        #[arg(long, requires = "repo")]
        default_branch: Option<String>,
        /// Flags for the installed pre-receive hook, after `--` (e.g. `-- --config-dir DIR`).
        #[arg(last = true, requires = "repo")]
        hook_args: Vec<String>,
    },
    /// Judge a push: reads "<old> <new> <ref>" lines on stdin (the server-side hook).
    PreReceive(PreReceiveArgs),
}

#[derive(Subcommand)]
enum GithubCommand {
    /// Judge a pull request (or merge-group commit): check run, sticky comment, job summary.
    Pr(stategate::github::PrArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum DiffFormat {
    Human,
    Markdown,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cwd = match std::env::current_dir() {
        Ok(cwd) => cwd,
        Err(e) => {
            eprintln!("stategate: cannot read the current directory: {e}");
            return ExitCode::from(2);
        }
    };
    let mut stdout = std::io::stdout().lock();
    let code = match cli.command {
        Command::Check(args) => {
            let color = wants_color(&args.color);
            run_check(&cwd, &args, &mut stdout, color)
        }
        Command::Verify { dir } => {
            let dir = dir.unwrap_or_else(|| cwd.join("policies"));
            match stategate::cli::verify::run_verify(&dir, &mut stdout) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("stategate: cannot write the results: {e}");
                    2
                }
            }
        }
        Command::Diff { base, head, format } => {
            let args = DiffArgs {
                base,
                head,
                format: match format {
                    DiffFormat::Human => stategate::diff::Format::Human,
                    DiffFormat::Markdown => stategate::diff::Format::Markdown,
                    DiffFormat::Json => stategate::diff::Format::Json,
                },
                color: wants_color("auto"),
            };
            run_diff(&cwd, &args, &mut stdout, &mut std::io::stderr())
        }
        Command::Hook {
            command:
                HookCommand::Install {
                    pre_commit,
                    repo,
                    default_branch,
                    hook_args,
                },
        } => {
            if pre_commit {
                install_pre_commit(&cwd, &mut std::io::stderr())
            } else if let Some(repo) = repo {
                install_pre_receive(
                    &cwd.join(repo),
                    &hook_args,
                    default_branch.as_deref(),
                    &mut std::io::stderr(),
                )
            } else {
                eprintln!("stategate: say which hook to install: --pre-commit or --repo DIR");
                2
            }
        }
        Command::Github {
            command: GithubCommand::Pr(args),
        } => stategate::github::run_pr(&cwd, &args, &mut stdout, &mut std::io::stderr()),
        Command::Hook {
            command: HookCommand::PreReceive(args),
        } => run_pre_receive(&args, &mut std::io::stdin().lock(), &mut std::io::stderr()),
    };
    ExitCode::from(code)
}

/// `auto` means a terminal that did not ask for no colour (https://no-color.org).
fn wants_color(choice: &str) -> bool {
    match choice {
        "always" => true,
        "never" => false,
        _ => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}
