use super::SourceFile;
use crate::finding::Location;

#[derive(Debug, Clone, Default)]
pub struct Positions {}

impl Positions {
    pub fn value_location(&self, source: &SourceFile, _pointer: &str) -> Location {
        Location::file(source.path.clone())
    }
    pub fn key_location(&self, source: &SourceFile, pointer: &str) -> Location {
        self.value_location(source, pointer)
    }
}
