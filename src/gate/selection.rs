//! The files of a change that a check judges: added, modified and renamed files under the checked
//! paths, by their index among them.

use std::ops::Index;

use crate::change::{FileChange, PathLookup};

/// The selected files of a change. A check of every file selects all of them, and then the
/// change's own list is the selection: a list of references to each file was 8 bytes a file, a
/// MiB of a 100,000-file check once grown by doubling, alive to the end of the stream (issue 12:
/// 100,000 files within 1.5x the memory of 10,000).
pub(super) enum Selection<'c> {
    All(&'c [FileChange]),
    Some(Vec<&'c FileChange>),
}

impl<'c> Selection<'c> {
    /// The files of `files` that `is_selected` keeps, in their order.
    pub fn of(files: &'c [FileChange], is_selected: impl Fn(&FileChange) -> bool) -> Selection<'c> {
        let Some(first_left_out) = files.iter().position(|f| !is_selected(f)) else {
            return Selection::All(files);
        };
        let rest = files[first_left_out + 1..]
            .iter()
            .filter(|f| is_selected(f));
        let mut some: Vec<&FileChange> = files[..first_left_out].iter().chain(rest).collect();
        some.shrink_to_fit();
        Selection::Some(some)
    }

    pub fn len(&self) -> usize {
        match self {
            Selection::All(files) => files.len(),
            Selection::Some(files) => files.len(),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &'c FileChange> + '_ {
        (0..self.len()).map(|index| self.get(index))
    }

    pub fn get(&self, index: usize) -> &'c FileChange {
        match self {
            Selection::All(files) => &files[index],
            Selection::Some(files) => files[index],
        }
    }

    /// Whether a path is among the selected files', asked of the list the selection has.
    pub fn contains_path(&self) -> SelectedPaths<'c, '_> {
        match self {
            Selection::All(files) => SelectedPaths::All(PathLookup::of(files)),
            Selection::Some(files) => SelectedPaths::Some(PathLookup::of(files)),
        }
    }
}

impl Index<usize> for Selection<'_> {
    type Output = FileChange;

    fn index(&self, index: usize) -> &FileChange {
        self.get(index)
    }
}

/// A lookup of the paths of a [`Selection`].
pub(super) enum SelectedPaths<'c, 's> {
    All(PathLookup<'c, FileChange>),
    Some(PathLookup<'s, &'c FileChange>),
}

impl SelectedPaths<'_, '_> {
    pub fn contains(&self, path: &str) -> bool {
        match self {
            SelectedPaths::All(lookup) => lookup.contains(path),
            SelectedPaths::Some(lookup) => lookup.contains(path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::Action;

    fn file(path: &str, action: Action) -> FileChange {
        FileChange::new(path, action, None, None)
    }

    fn paths<'c>(selection: &Selection<'c>) -> Vec<&'c str> {
        selection.iter().map(|f| &*f.path).collect()
    }

    #[test]
    fn a_selection_of_every_file_is_the_change_s_own_list() {
        let files = [file("a.yaml", Action::Added), file("b.yaml", Action::Added)];
        let all = Selection::of(&files, |_| true);
        assert!(matches!(all, Selection::All(_)));
        assert_eq!(paths(&all), ["a.yaml", "b.yaml"]);
        assert_eq!(all[1].path.as_str(), "b.yaml");
        assert!(all.contains_path().contains("a.yaml"));
        assert!(!all.contains_path().contains("c.yaml"));
    }

    #[test]
    fn a_selection_that_leaves_files_out_keeps_the_others_in_order() {
        let files = [
            file("a.yaml", Action::Added),
            file("b.yaml", Action::Deleted),
            file("c.yaml", Action::Modified),
            file("d.yaml", Action::Deleted),
            file("e.yaml", Action::Renamed),
        ];
        let some = Selection::of(&files, |f| f.action() != Action::Deleted);
        assert!(matches!(some, Selection::Some(_)));
        assert_eq!(paths(&some), ["a.yaml", "c.yaml", "e.yaml"]);
        assert_eq!(some.len(), 3);
        assert_eq!(some[2].path.as_str(), "e.yaml");
        assert!(some.contains_path().contains("c.yaml"));
        assert!(!some.contains_path().contains("b.yaml"));
        let none = Selection::of(&files, |_| false);
        assert_eq!(none.len(), 0);
    }
}
