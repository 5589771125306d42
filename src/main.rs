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
    /// Write a commented .stategate.yaml that fits this repository, saying what it decided.
    Init(stategate::cli::init::InitArgs),
    /// The policies built into stategate (`policies.builtin` in the config).
    Policies {
        #[command(subcommand)]
        command: PoliciesCommand,
    },
    /// Run the policies' unit tests (`test_*` rules), like `opa test`.
    Verify {
        /// Directory of `.rego` files (default: policies/).
        dir: Option<std::path::PathBuf>,
        /// Also name each test's file.
        #[arg(short, long)]
        verbose: bool,
        /// Run only the tests whose name (`data.pkg.test_x`) matches this regular expression.
        #[arg(long, value_name = "REGEX")]
        run: Option<String>,
        /// Report the lines of each policy file that the tests reached.
        #[arg(long)]
        coverage: bool,
    },
    /// Dry-run diff of desired state: between two revisions, or the working tree or index
    /// against HEAD.
    Diff {
        /// The base revision (default: HEAD, against the working tree or, with --staged, the index).
        #[arg(long)]
        base: Option<String>,
        /// The head revision (default with --base: HEAD; without: the working tree).
        #[arg(long)]
        head: Option<String>,
        /// Diff the index (staged changes) against HEAD.
        #[arg(long, conflicts_with_all = ["base", "head"])]
        staged: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = DiffFormat::Human)]
        format: DiffFormat,
        /// Also show live → head for each object: the live state from the `drift.live` source of
        /// each environment the change touches (drift's comparison; secret values masked).
        #[arg(long)]
        live: bool,
        /// With --live: read only this environment's live source.
        #[arg(long, requires = "live", value_name = "ENV")]
        env: Option<String>,
        /// Cache kustomize renders here (default: `$STATEGATE_CACHE_DIR`, else
        /// `stategate/render-cache` in the repository's git directory, as `check` does).
        #[arg(long)]
        cache_dir: Option<std::path::PathBuf>,
        /// Render without the cache: nothing is read from it or written to it.
        #[arg(long, conflicts_with = "cache_dir")]
        no_cache: bool,
    },
    /// GitHub front door (the Action's entry point; reads the GITHUB_* variables).
    Github {
        #[command(subcommand)]
        command: GithubCommand,
    },
    /// Live state against the desired state at a revision; exit 1 when drift blocks.
    Drift(stategate::cli::drift::DriftArgs),
    /// Git hooks.
    Hook {
        #[command(subcommand)]
        command: HookCommand,
    },
}

#[derive(Subcommand)]
enum PoliciesCommand {
    /// One line per built-in policy.
    List,
    /// Print a built-in policy's Rego and parameters.
    Show {
        /// The policy's name, as `stategate policies list` prints it.
        name: String,
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
    /// Coloured on a terminal.
    Human,
    /// A pull-request comment.
    Markdown,
    /// Machine-readable.
    Json,
}

/// Make this thread one of rayon's workers. A parallel step started from outside the pool hands
/// its work to a sleeping worker and waits to be woken; on a loaded machine each hand-off cost
/// milliseconds, more than the whole work of a one-file check. The hook keeps the default pool:
/// its main thread waits on the check's deadline and would leave its worker share idle.
fn join_the_thread_pool() {
    // Fails only if a pool exists already, which then serves as it is.
    let _ = rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global();
}

fn main() -> ExitCode {
    stategate::alloc::tune();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Hook { .. }) {
        join_the_thread_pool();
    }
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
        Command::Init(args) => {
            stategate::cli::init::run_init(&cwd, &args, &mut stdout, &mut std::io::stderr())
        }
        Command::Policies { command } => {
            let result = match command {
                PoliciesCommand::List => stategate::cli::policies::list(&mut stdout),
                PoliciesCommand::Show { name } => {
                    stategate::cli::policies::show(&name, &mut stdout, &mut std::io::stderr())
                }
            };
            result.unwrap_or(2)
        }
        Command::Verify {
            dir,
            verbose,
            run,
            coverage,
        } => {
            let dir = dir.unwrap_or_else(|| cwd.join("policies"));
            let options = stategate::cli::verify::VerifyOptions {
                verbose,
                run,
                coverage,
            };
            match stategate::cli::verify::run_verify(&dir, &options, &mut stdout) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("stategate: cannot write the results: {e}");
                    2
                }
            }
        }
        Command::Diff {
            base,
            head,
            staged,
            format,
            live,
            env,
            cache_dir,
            no_cache,
        } => {
            let args = DiffArgs {
                base,
                head,
                staged,
                format: match format {
                    DiffFormat::Human => stategate::diff::Format::Human,
                    DiffFormat::Markdown => stategate::diff::Format::Markdown,
                    DiffFormat::Json => stategate::diff::Format::Json,
                },
                color: wants_color("auto"),
                live,
                env,
                cache_dir,
                no_cache,
            };
            run_diff(&cwd, &args, &mut stdout, &mut std::io::stderr())
        }
        Command::Drift(args) => stategate::cli::drift::run_drift(&cwd, &args, &mut stdout),
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

/// `auto` means a terminal that did not ask for no colour: `NO_COLOR` counts only when non-empty
/// (https://no-color.org), and a non-empty `CLICOLOR_FORCE` other than `0` forces colour
/// (https://bixense.com/clicolors/).
fn wants_color(choice: &str) -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    match choice {
        "always" => true,
        "never" => false,
        _ if set("NO_COLOR") => false,
        _ if set("CLICOLOR_FORCE")
            && std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| v != "0") =>
        {
            true
        }
        _ => std::io::stdout().is_terminal(),
    }
}
