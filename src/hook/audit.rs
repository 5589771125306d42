//! The audit log: one JSON line per ref decision (accepted or rejected, bypassed or not), appended
//! to `--audit-log FILE` or `<git dir>/stategate-audit.log`.

use std::io::Write;
use std::path::Path;

use serde::Serialize;

/// One decision about one ref of one push.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// Seconds since the Unix epoch.
    pub time: u64,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub old: String,
    pub new: String,
    pub action: String,
    pub actor: Option<String>,
    /// `accepted`, `rejected` or `undecided` (rejected because the gate could not judge).
    pub decision: String,
    pub errors: usize,
    pub warnings: usize,
    /// Rule codes of the blocking findings.
    pub rules: Vec<String>,
    /// The reason given with `-o stategate.bypass=…`, if a bypass was requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bypass: Option<String>,
    /// Whether the requested bypass was honoured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bypass_granted: Option<bool>,
    /// The reason given with `-o stategate.ack-drift=…`, if drift was acknowledged at push time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_drift: Option<String>,
    /// Whether that acknowledgement was honoured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_drift_granted: Option<bool>,
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Append the records as JSON lines in one write, so concurrent pushes do not interleave lines.
pub fn append(path: &Path, records: &[AuditRecord]) -> std::io::Result<()> {
    let mut text = String::new();
    for record in records {
        let line = serde_json::to_string(record).map_err(std::io::Error::other)?;
        text.push_str(&line);
        text.push('\n');
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_appended_as_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let record = AuditRecord {
            time: 1,
            git_ref: "refs/heads/main".into(),
            old: "a".into(),
            new: "b".into(),
            action: "update".into(),
            actor: Some("alice".into()),
            decision: "accepted".into(),
            errors: 0,
            warnings: 0,
            rules: vec![],
            bypass: Some("outage".into()),
            bypass_granted: Some(true),
            ack_drift: None,
            ack_drift_granted: None,
        };
        append(&path, std::slice::from_ref(&record)).unwrap();
        append(&path, &[record]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["ref"], "refs/heads/main");
        assert_eq!(lines[1]["bypass"], "outage");
    }
}
