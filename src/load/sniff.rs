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
pub(crate) fn hides_from_filters(bytes: &[u8]) -> bool {
    bytes.contains(&b'\\') || std::str::from_utf8(bytes).is_err()
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
    }
}
