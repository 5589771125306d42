use super::{LoadOptions, Loaded};

pub fn load(_path: &str, _bytes: &[u8], _options: &LoadOptions) -> Loaded {
    Loaded::default()
}
