//! `stategate check FILE|DIR|-` outside a git repository: exactly those inputs, as conftest and
//! kubeconform take them, judged by the rules of `--config` or the current directory.

use std::io::Read;
use std::path::Path;

use super::{CheckArgs, apply_flags, undecided};
use crate::change::{Action, ChangeSet, FileChange};
use crate::gate::Gate;
use crate::report::Report;
use crate::tree::{Content, DirTree};

/// The name stdin's stream is reported under.
const STDIN: &str = "<stdin>";

pub(super) fn check(cwd: &Path, args: &CheckArgs) -> Report {
    let mut files = Vec::new();
    for arg in &args.paths {
        if let Err(message) = collect(cwd, arg, &mut files) {
            return undecided(
                message,
                "name files or directories that exist, or `-` for stdin",
            );
        }
    }
    let names: Vec<String> = files.iter().map(|f| f.path.to_string()).collect();
    let rules = DirTree::new(cwd, "the current directory");
    let gate = Gate::open_with(Box::new(rules), args.config.as_deref(), |config| {
        apply_flags(args, config);
        // Named inputs are checked whatever their name; directories keep `include`/`exclude`.
        config
            .include
            .extend(names.iter().map(|n| globset::escape(n)));
    });
    let gate = match gate {
        Ok(gate) => gate,
        Err(report) => return report,
    };
    let count = files.len();
    let change = ChangeSet {
        files,
        ..ChangeSet::default()
    };
    let head = DirTree::new(cwd, "the current directory");
    let mut report = gate.check(&change, &head);
    let noun = if count == 1 { "file" } else { "files" };
    report
        .notes
        .push(format!("checked {count} {noun} outside a git repository"));
    report
}

/// Add the file, every file under the directory, or stdin; a name that matches nothing is an error.
fn collect(cwd: &Path, arg: &str, files: &mut Vec<FileChange>) -> Result<(), String> {
    if arg == "-" {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read stdin: {e}"))?;
        files.push(added(STDIN.to_owned(), bytes));
        return Ok(());
    }
    let path = cwd.join(arg);
    let meta = std::fs::metadata(&path)
        .map_err(|e| format!("path `{arg}` matches no file or directory ({e})"))?;
    let name = arg
        .trim_start_matches("./")
        .trim_end_matches('/')
        .to_owned();
    if meta.is_file() {
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read `{arg}`: {e}"))?;
        files.push(added(name, bytes));
        return Ok(());
    }
    let tree = DirTree::new(&path, arg.to_owned());
    let found = crate::tree::Tree::files_under(&tree, "");
    for rel in found {
        let bytes =
            std::fs::read(path.join(&rel)).map_err(|e| format!("cannot read `{rel}`: {e}"))?;
        let shown = if name.is_empty() || name == "." {
            rel
        } else {
            format!("{name}/{rel}")
        };
        files.push(added(shown, bytes));
    }
    Ok(())
}

fn added(path: String, bytes: Vec<u8>) -> FileChange {
    FileChange::new(path, Action::Added, None, Some(Content::in_memory(bytes)))
}
