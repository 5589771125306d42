//! Byte filters: whether a file may hold what a whole-tree index or an early pass looks for,
//! decided on its bytes before any is parsed (parsing is most of a check's time). A filter may
//! pass files it need not; it must never drop one that matters, so text whose bytes cannot say
//! passes every filter.

/// Whether `needle` occurs in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && memchr::memmem::find(haystack, needle).is_some()
}

/// Whether a byte filter may miss what a file says: text the loader decodes (UTF-16) or unescapes
/// (JSON `\u0053`, YAML `\x53`), where the bytes of a word need not appear. Every filter passes
/// such files, so they are parsed and judged like the rest.
///
/// Only escapes that can make a character a filter looks for count: a letter or digit (`\x`,
/// `\u`, `\U`), the slash of an `apiVersion` (`\/`), or nothing at all, joining two lines (a
/// backslash ending a line in double quotes). The rest (`\"`, `\\`, `\t`, `\n`, …) make quotes,
/// backslashes and blanks, which no filter's word holds, and a backslash outside double quotes is
/// itself. Any backslash used to count: the regular expressions in CRD descriptions made 39 of the
/// corpus' files pass every filter (20 now), each loaded before the stream as if it defined CRDs.
pub(crate) fn hides_from_filters(bytes: &[u8]) -> bool {
    let may_hide = |at: usize| {
        matches!(
            bytes.get(at + 1),
            Some(b'x' | b'u' | b'U' | b'/' | b'\n' | b'\r')
        )
    };
    memchr::memchr_iter(b'\\', bytes).any(may_hide) || std::str::from_utf8(bytes).is_err()
}

/// Whether `group` (`"argoproj.io/"`) occurs where an `apiVersion` value would start it: not
/// inside a longer name (`argocd.argoproj.io/refresh`, an annotation). A CRD of the group names
/// it only without the slash, so the large CRD files of a repository pass no filter for the
/// group's objects (the corpus's Argo CD CRDs, 3.8 MB, were parsed once more for nothing).
pub(crate) fn names_group(bytes: &[u8], group: &str) -> bool {
    let part_of_name = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'-';
    memchr::memmem::find_iter(bytes, group.as_bytes())
        .any(|at| at == 0 || !part_of_name(bytes[at - 1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_counts_where_an_api_version_starts_it() {
        for text in [
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\n",
            "apiVersion: 'argoproj.io/v1alpha1'\n",
            r#"{"apiVersion":"argoproj.io/v1alpha1"}"#,
            "argoproj.io/v1alpha1",
        ] {
            assert!(names_group(text.as_bytes(), "argoproj.io/"), "{text}");
        }
    }

    #[test]
    fn a_group_inside_a_longer_name_or_without_its_slash_does_not_count() {
        for text in [
            // Argo CD's annotations, and its CRDs, which name the group without a version.
            "annotations:\n  argocd.argoproj.io/refresh: hard\n",
            "spec:\n  group: argoproj.io\n  names:\n    kind: Application\n",
            "apiVersion: rollout-argoproj.io/v1\n",
        ] {
            assert!(!names_group(text.as_bytes(), "argoproj.io/"), "{text}");
        }
    }

    #[test]
    fn escapes_and_other_encodings_pass_every_filter() {
        // `\x2e` is the dot: a YAML parser reads `argoproj.io/v1alpha1`.
        assert!(hides_from_filters(
            br#"apiVersion: "argoproj\x2eio/v1alpha1""#
        ));
        // UTF-16 with its byte-order mark, as the loader reads it.
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("kind: Secret".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert!(hides_from_filters(&utf16));
        assert!(!hides_from_filters(b"apiVersion: argoproj.io/v1alpha1\n"));
        // JSON's escaped slash, and a line joined in double quotes: the parsed text holds
        // `argoproj.io/` where the bytes do not.
        assert!(hides_from_filters(
            br#"{"apiVersion":"argoproj.io\/v1alpha1"}"#
        ));
        assert!(hides_from_filters(
            b"apiVersion: \"argoproj.\\\n  io/v1alpha1\"\n"
        ));
        assert!(hides_from_filters(
            b"kind: \"\\u0053ecret\"\r\nx: \"a\\\r\n b\"\r\n"
        ));
        assert!(hides_from_filters(br#"kind: "\U00000053ecret""#));
    }

    /// What the loader reads, for each text: the filters see the same words in its bytes.
    #[test]
    fn escapes_that_make_no_word_pass_no_filter() {
        for text in [
            // A CRD description's regular expression, in a block and in double quotes.
            "description: |\n  must match ^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]+)*$\n",
            "pattern: \"^[a-z]+(\\\\.[a-z]+)*$\"\n",
            "msg: \"say \\\"hi\\\"\\tnow\\n\"\n",
            "path: 'C:\\Windows'\n",
        ] {
            assert!(!hides_from_filters(text.as_bytes()), "{text}");
            let loaded = crate::load::load_file("x.yaml", text.as_bytes(), &Default::default());
            assert!(loaded.findings.is_empty(), "{text}: {:?}", loaded.findings);
        }
    }
}
