//! A JSON value packed into bytes, for values a check keeps to use later, in less memory than
//! parsed: the documents of the files the first look loads and the stream judges
//! (`gate::stream::Kept`), and the schemas of the repository's CRDs ([`crate::schema::CrdKind`]).
//! Written as JSON text and parsed back, the kept documents cost 4% of the corpus' `check --all`
//! (2.3% printing, with every string escaped, and 1.9% parsing): packed, a string is copied as it
//! is, a number in its eight bytes, and nothing is escaped.
//!
//! The layout: one tag byte for each value, then for a number its 8 bytes (little-endian), for a
//! string its length and bytes, for an array its length and items, for an object its length and
//! each key (length, bytes) and value, in order. Lengths are LEB128 varints. Only this process
//! reads what it wrote, so there is no version and no promise beyond [`unpack`] of [`pack`].

use serde_json::{Map, Number, Value};

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const UNSIGNED: u8 = 3;
const SIGNED: u8 = 4;
const FLOAT: u8 = 5;
const STRING: u8 = 6;
const ARRAY: u8 = 7;
const OBJECT: u8 = 8;

/// `value`, packed.
pub(crate) fn pack(value: &Value) -> Box<[u8]> {
    let mut out = Vec::new();
    write_value(value, &mut out);
    out.into_boxed_slice()
}

/// An object, packed as [`pack`] packs it as a value.
pub(crate) fn pack_object(map: &Map<String, Value>) -> Box<[u8]> {
    let mut out = Vec::new();
    write_object(map, &mut out);
    out.into_boxed_slice()
}

/// The value [`pack`] packed; `None` for bytes it did not write.
pub(crate) fn unpack(bytes: &[u8]) -> Option<Value> {
    let mut reader = Reader { bytes, at: 0 };
    let value = reader.value()?;
    (reader.at == bytes.len()).then_some(value)
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Number(number) => write_number(number, out),
        Value::String(text) => {
            out.push(STRING);
            write_text(text, out);
        }
        Value::Array(items) => {
            out.push(ARRAY);
            write_length(items.len(), out);
            items.iter().for_each(|item| write_value(item, out));
        }
        Value::Object(map) => write_object(map, out),
    }
}

fn write_object(map: &Map<String, Value>, out: &mut Vec<u8>) {
    out.push(OBJECT);
    write_length(map.len(), out);
    for (key, value) in map {
        write_text(key, out);
        write_value(value, out);
    }
}

/// A number as it is held: `1` and `1.0` are different values, and stay so.
fn write_number(number: &Number, out: &mut Vec<u8>) {
    if let Some(n) = number.as_u64() {
        out.push(UNSIGNED);
        out.extend_from_slice(&n.to_le_bytes());
    } else if let Some(n) = number.as_i64() {
        out.push(SIGNED);
        out.extend_from_slice(&n.to_le_bytes());
    } else {
        out.push(FLOAT);
        out.extend_from_slice(&number.as_f64().unwrap_or(f64::NAN).to_le_bytes());
    }
}

fn write_text(text: &str, out: &mut Vec<u8>) {
    write_length(text.len(), out);
    out.extend_from_slice(text.as_bytes());
}

fn write_length(mut length: usize, out: &mut Vec<u8>) {
    loop {
        let low = (length & 0x7f) as u8;
        length >>= 7;
        if length == 0 {
            out.push(low);
            return;
        }
        out.push(low | 0x80);
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn value(&mut self) -> Option<Value> {
        Some(match self.byte()? {
            NULL => Value::Null,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            UNSIGNED => Value::Number(u64::from_le_bytes(self.eight()?).into()),
            SIGNED => Value::Number(i64::from_le_bytes(self.eight()?).into()),
            FLOAT => Value::Number(Number::from_f64(f64::from_le_bytes(self.eight()?))?),
            STRING => Value::String(self.text()?),
            ARRAY => {
                let length = self.length()?;
                // Each item takes a byte at least: a length past the rest is not ours.
                let mut items = Vec::with_capacity(length.min(self.rest()));
                for _ in 0..length {
                    items.push(self.value()?);
                }
                Value::Array(items)
            }
            OBJECT => {
                let length = self.length()?;
                let mut map = Map::with_capacity(length.min(self.rest()));
                for _ in 0..length {
                    let key = self.text()?;
                    let value = self.value()?;
                    map.insert(key, value);
                }
                Value::Object(map)
            }
            _ => return None,
        })
    }

    fn rest(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn byte(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    fn take(&mut self, length: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(length)?;
        let taken = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(taken)
    }

    fn eight(&mut self) -> Option<[u8; 8]> {
        self.take(8)?.try_into().ok()
    }

    fn text(&mut self) -> Option<String> {
        let length = self.length()?;
        let bytes = self.take(length)?;
        std::str::from_utf8(bytes).ok().map(str::to_owned)
    }

    fn length(&mut self) -> Option<usize> {
        let mut length = 0usize;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            length |= usize::from(byte & 0x7f).checked_shl(shift)?;
            if byte & 0x80 == 0 {
                return Some(length);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_value_unpacks_as_it_was_packed() {
        let value = json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "z-first": {"b": [1, -1, 1.0, -0.0, 1.5e300, u64::MAX, i64::MIN]},
            "a-second": "ünïcødé \" \\ \n \u{2028} ${VAR}",
            "": null,
            "flags": [true, false, [], {}],
            "long": "x".repeat(300),
        });
        let packed = pack(&value);
        assert_eq!(pack_object(value.as_object().unwrap()), packed);
        let back = unpack(&packed).unwrap();
        assert_eq!(back, value);
        // Order and the exact form of each number are kept, as JSON text keeps them.
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
    }

    #[test]
    fn bytes_it_did_not_write_are_refused_not_misread() {
        let packed = pack(&json!({"a": [1, "b"]}));
        for end in 0..packed.len() {
            assert_eq!(unpack(&packed[..end]), None, "cut at {end}");
        }
        let mut longer = packed.to_vec();
        longer.push(NULL);
        assert_eq!(unpack(&longer), None);
        assert_eq!(unpack(&[42]), None);
        // A length no input could hold.
        assert_eq!(
            unpack(&[
                ARRAY, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f
            ]),
            None
        );
        // Not UTF-8.
        assert_eq!(unpack(&[STRING, 1, 0xff]), None);
    }
}
