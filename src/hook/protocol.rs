//! The pre-receive protocol: one `<old> <new> <ref>` line per updated ref on stdin.
//!
//! A zero id (40 zeros in SHA-1 repositories, 64 in SHA-256 ones) on the old side means the ref is
//! created, on the new side that it is deleted.

use std::fmt;

/// What a push does to one ref.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    Create,
    Update,
    Delete,
}

impl UpdateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateKind::Create => "create",
            UpdateKind::Update => "update",
            UpdateKind::Delete => "delete",
        }
    }
}

/// One line of the push: a ref moving from `old` to `new` (hex object ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    pub old: String,
    pub new: String,
    pub name: String,
}

/// The hash function of the pushing repository, told by the length of its ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectFormat {
    Sha1,
    Sha256,
}

impl RefUpdate {
    pub fn kind(&self) -> UpdateKind {
        match (is_zero(&self.old), is_zero(&self.new)) {
            (true, _) => UpdateKind::Create,
            (_, true) => UpdateKind::Delete,
            _ => UpdateKind::Update,
        }
    }

    pub fn format(&self) -> ObjectFormat {
        if self.old.len() == 64 || self.new.len() == 64 {
            ObjectFormat::Sha256
        } else {
            ObjectFormat::Sha1
        }
    }
}

impl fmt::Display for RefUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.old, self.new, self.name)
    }
}

/// A line git should never send; the hook then refuses the whole push.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable pre-receive input line {line}: `{text}` (expected `<old> <new> <ref>`)")]
pub struct ProtocolError {
    pub line: usize,
    pub text: String,
}

/// An all-zero id of either length.
pub fn is_zero(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b == b'0')
}

fn is_object_id(id: &str) -> bool {
    (id.len() == 40 || id.len() == 64) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Parse every non-empty line of the hook's stdin.
pub fn parse_updates(input: &str) -> Result<Vec<RefUpdate>, ProtocolError> {
    let mut updates = Vec::new();
    for (index, line) in input.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let error = || ProtocolError {
            line: index + 1,
            text: line.chars().filter(|c| !c.is_control()).take(200).collect(),
        };
        let mut parts = line.splitn(3, ' ');
        let (Some(old), Some(new), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(error());
        };
        if !is_object_id(old) || !is_object_id(new) || old.len() != new.len() || name.is_empty() {
            return Err(error());
        }
        updates.push(RefUpdate {
            old: old.to_ascii_lowercase(),
            new: new.to_ascii_lowercase(),
            name: name.to_owned(),
        });
    }
    Ok(updates)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const Z: &str = "0000000000000000000000000000000000000000";

    #[test]
    fn updates_creations_and_deletions_are_told_apart() {
        let input =
            format!("{A} {B} refs/heads/main\n{Z} {B} refs/heads/new\n{A} {Z} refs/tags/v1\n");
        let updates = parse_updates(&input).unwrap();
        let kinds: Vec<_> = updates.iter().map(RefUpdate::kind).collect();
        assert_eq!(
            kinds,
            vec![UpdateKind::Update, UpdateKind::Create, UpdateKind::Delete]
        );
        assert_eq!(updates[1].name, "refs/heads/new");
        assert!(updates.iter().all(|u| u.format() == ObjectFormat::Sha1));
    }

    #[test]
    fn sha256_zero_ids_are_64_zeros() {
        let zero = "0".repeat(64);
        let new = "a".repeat(64);
        let updates = parse_updates(&format!("{zero} {new} refs/heads/main\n")).unwrap();
        assert_eq!(updates[0].kind(), UpdateKind::Create);
        assert_eq!(updates[0].format(), ObjectFormat::Sha256);
    }

    #[test]
    fn malformed_lines_are_errors_with_their_line_number() {
        let err =
            parse_updates(&format!("{A} {B} refs/heads/main\n{A} nothex refs/x\n")).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(parse_updates(&format!("{A} {B}\n")).is_err());
        assert!(parse_updates(&format!("{A} {} refs/heads/x\n", "0".repeat(64))).is_err());
    }

    #[test]
    fn ref_names_may_contain_spaces_after_the_ids() {
        let updates = parse_updates(&format!("{A} {B} refs/heads/a b\n")).unwrap();
        assert_eq!(updates[0].name, "refs/heads/a b");
    }
}
