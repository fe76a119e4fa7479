//! [`Pickle`]: Python's pickle as a [`Codec`], and the guard that keeps a crafted pickle
//! from overflowing the stack or memory of the process that decodes it.
#![forbid(unsafe_code)]

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::bounded::{self, MAX_DEPTH};
use super::Codec;
use crate::error::{Error, Result};

/// Python's pickle, through `serde-pickle`: what Python's `Connection.send` / `recv` use, so a
/// Rust process and a Python process exchange values over a
/// [`Listener`](crate::connection::Listener) / [`Client`](crate::connection::Client) or a
/// pipe with [`send_with`](crate::Connection::send_with) /
/// [`recv_with`](crate::Connection::recv_with).
///
/// | Python | Rust |
/// |---|---|
/// | `int` | `i64` (any integer type that fits; an `int` beyond `i64` is a codec error) |
/// | `float` | `f64` |
/// | `str` | `String` |
/// | `bytes` | `serde_bytes::ByteBuf` (a plain `Vec<u8>` is a list of ints) |
/// | `list`, `tuple` | `Vec<T>`, tuples |
/// | `dict` | `HashMap` / `BTreeMap` |
/// | `None` | `Option::None`, `()` |
///
/// `serde_pickle::Value` decodes anything pickle-able without a fixed type. Values are
/// encoded with pickle protocol 3, which every Python 3 reads. Decoding never runs code
/// (unlike Python's `pickle.loads`): a class instance or other global is a codec error. A
/// value that does not fit the Rust type, trailing bytes, nesting deeper than 128 levels,
/// or memo references that would copy out to millions of values, is [`Error::Codec`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Pickle;

impl Codec for Pickle {
    fn encode<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<()> {
        // `to_writer` wants a sized value; a `&T` is one, and serialises as the `T`.
        serde_pickle::to_writer(out, &value, serde_pickle::SerOptions::new()).map_err(Error::codec)
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        guard(bytes)?;
        let mut de = serde_pickle::Deserializer::new(bytes, serde_pickle::DeOptions::new());
        let value = bounded::deserialize(&mut de).map_err(Error::codec)?;
        de.end().map_err(Error::codec)?;
        Ok(value)
    }
}

/// Every decode may build this many values, or four per input byte if that is more.
const MAX_VALUES: u64 = 1 << 22;

/// What the guard knows of a stack entry: a value, or a reference to a memo slot (which
/// `serde-pickle` copies out when it is used).
#[derive(Clone, Copy)]
enum Item {
    Value { depth: usize, size: u64 },
    Memo(u64),
}

/// Walks the opcodes the way `serde-pickle` evaluates them, tracking only how deep each
/// value nests and how many values it holds, and refuses a pickle whose values nest deeper
/// than [`MAX_DEPTH`] or whose memo copies add up past the value budget.
///
/// `serde-pickle` builds its whole value tree before deserialising, and both that tree's
/// drop and its deserialisation recurse once per level: 100,000 nested lists (200 KB)
/// overflow the stack. And each use of a memo reference copies the value out, so a few
/// hundred bytes of references to references ask for 2^40 values. The walk stops quietly
/// at anything it does not model (an unknown opcode, an underflow, out-of-band buffers);
/// `serde-pickle` then refuses the same bytes at the same place, before building more.
fn guard(bytes: &[u8]) -> Result<()> {
    let budget = MAX_VALUES.max(4 * bytes.len() as u64);
    Walk {
        bytes,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        built: 0,
        budget,
    }
    .run()
    .map_err(Error::codec)
}

struct Walk<'a> {
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Item>,
    marks: Vec<Vec<Item>>,
    memo: HashMap<u64, (usize, u64)>,
    built: u64,
    budget: u64,
}

/// Not modelled (or malformed): leave the verdict to `serde-pickle`.
struct Stop;

/// One step of the walk: on, stop quietly (`Err(Ok(Stop))`), or refuse (`Err(Err(why))`).
type Step<T> = std::result::Result<T, std::result::Result<Stop, String>>;

impl Walk<'_> {
    fn run(mut self) -> std::result::Result<(), String> {
        match self.walk() {
            Ok(()) | Err(Ok(Stop)) => Ok(()),
            Err(Err(refusal)) => Err(refusal),
        }
    }

    fn walk(&mut self) -> Step<()> {
        const SCALAR: Item = Item::Value { depth: 0, size: 1 };
        const EMPTY: Item = Item::Value { depth: 1, size: 1 };
        loop {
            let op = self.take(1)?[0];
            match op {
                b'.' => return Ok(()),
                b'(' => self.marks.push(std::mem::take(&mut self.stack)),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = *self.stack.last().ok_or(Ok(Stop))?;
                    self.stack.push(top);
                }
                // Scalars with a newline-terminated argument.
                b'F' | b'I' | b'L' | b'S' | b'V' => {
                    self.line()?;
                    self.push(SCALAR)?;
                }
                b'J' => self.fixed(4, SCALAR)?,
                b'K' => self.fixed(1, SCALAR)?,
                b'M' => self.fixed(2, SCALAR)?,
                b'G' => self.fixed(8, SCALAR)?,
                b'N' | 0x88 | 0x89 => self.push(SCALAR)?,
                b'T' | b'X' | b'B' | 0x8b => self.sized(4)?,
                b'U' | b'C' | 0x8c | 0x8a => self.sized(1)?,
                0x8d | 0x8e | 0x96 => self.sized(8)?,
                b']' | b'}' | b')' | 0x8f => self.push(EMPTY)?,
                // Add to the container below: one item, a key and value, or a marked run.
                b'a' => {
                    let v = self.pop_value()?;
                    self.grow(&[v])?;
                }
                b's' => {
                    let v = self.pop_value()?;
                    let k = self.pop_value()?;
                    self.grow(&[k, v])?;
                }
                b'e' | b'u' | 0x90 => {
                    let items = self.pop_mark_values()?;
                    self.grow(&items)?;
                }
                // Build a container from a marked run, or from the top 1-3 items.
                b'l' | b't' | b'd' | 0x91 => {
                    let items = self.pop_mark_values()?;
                    self.push(container(&items))?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop_value()?);
                    }
                    self.push(container(&items))?;
                }
                // Memo.
                b'p' => {
                    let id = self.line_number()?;
                    self.memoize(id)?;
                }
                b'q' => {
                    let id = u64::from(self.take(1)?[0]);
                    self.memoize(id)?;
                }
                b'r' => {
                    let id = u64::from(self.u32()?);
                    self.memoize(id)?;
                }
                0x94 => {
                    let id = self.memo.len() as u64;
                    self.memoize(id)?;
                }
                b'g' => {
                    let id = self.line_number()?;
                    self.push_memo(id)?;
                }
                b'h' => {
                    let id = u64::from(self.take(1)?[0]);
                    self.push_memo(id)?;
                }
                b'j' => {
                    let id = u64::from(self.u32()?);
                    self.push_memo(id)?;
                }
                // Globals and objects: modelled coarsely (a value holding its arguments).
                b'c' => {
                    self.line()?;
                    self.line()?;
                    self.push(SCALAR)?;
                }
                0x93 => {
                    self.pop()?;
                    self.pop()?;
                    self.push(SCALAR)?;
                }
                b'R' | 0x81 => {
                    let args = self.pop_value()?;
                    self.pop()?;
                    self.push(container(&[args]))?;
                }
                0x92 => {
                    let kwargs = self.pop_value()?;
                    let args = self.pop_value()?;
                    self.pop()?;
                    self.push(container(&[args, kwargs]))?;
                }
                b'b' => {
                    let state = self.pop_value()?;
                    self.grow(&[state])?;
                }
                b'o' | b'i' => {
                    if op == b'i' {
                        self.line()?;
                        self.line()?;
                    }
                    let items = self.pop_mark_values()?;
                    self.push(container(&items))?;
                }
                0x80 => {
                    self.take(1)?;
                }
                0x95 => {
                    self.take(8)?;
                }
                _ => return Err(Ok(Stop)),
            }
        }
    }

    fn take(&mut self, n: usize) -> Step<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(Ok(Stop))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u32(&mut self) -> Step<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn line(&mut self) -> Step<&[u8]> {
        let rest = &self.bytes[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or(Ok(Stop))?;
        self.take(n + 1)
    }

    fn line_number(&mut self) -> Step<u64> {
        let line = self.line()?;
        std::str::from_utf8(&line[..line.len() - 1])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or(Ok(Stop))
    }

    fn fixed(&mut self, n: usize, item: Item) -> Step<()> {
        self.take(n)?;
        self.push(item)
    }

    /// A length-prefixed scalar (string, bytes, long) with a little-endian length of `width` bytes.
    fn sized(&mut self, width: usize) -> Step<()> {
        let b = self.take(width)?;
        let mut len = [0u8; 8];
        len[..width].copy_from_slice(b);
        let len = usize::try_from(u64::from_le_bytes(len)).map_err(|_| Ok(Stop))?;
        self.take(len)?;
        self.push(Item::Value { depth: 0, size: 1 })
    }

    fn push(&mut self, item: Item) -> Step<()> {
        if let Item::Value { depth, .. } = item {
            check_depth(depth)?;
        }
        self.stack.push(item);
        Ok(())
    }

    fn pop(&mut self) -> Step<Item> {
        self.stack.pop().ok_or(Ok(Stop))
    }

    fn pop_mark(&mut self) -> Step<Vec<Item>> {
        let below = self.marks.pop().ok_or(Ok(Stop))?;
        Ok(std::mem::replace(&mut self.stack, below))
    }

    /// Resolves a popped item as `serde-pickle` does: a memo reference is copied out.
    fn value(&mut self, item: Item) -> Step<(usize, u64)> {
        match item {
            Item::Value { depth, size } => Ok((depth, size)),
            Item::Memo(id) => {
                let (depth, size) = *self.memo.get(&id).ok_or(Ok(Stop))?;
                self.built = self.built.saturating_add(size);
                if self.built > self.budget {
                    return Err(Err(format!(
                        "the pickle's memo references copy out to more than {} values",
                        self.budget
                    )));
                }
                Ok((depth, size))
            }
        }
    }

    fn pop_value(&mut self) -> Step<(usize, u64)> {
        let item = self.pop()?;
        self.value(item)
    }

    fn pop_mark_values(&mut self) -> Step<Vec<(usize, u64)>> {
        let items = self.pop_mark()?;
        items.into_iter().map(|i| self.value(i)).collect()
    }

    /// Adds `items` to the container on top of the stack (through the memo when the top is
    /// a reference: `serde-pickle` mutates the memo's value in place).
    fn grow(&mut self, items: &[(usize, u64)]) -> Step<()> {
        let deepest = items.iter().map(|&(d, _)| d + 1).max().unwrap_or(0);
        let added: u64 = items.iter().fold(0u64, |a, &(_, s)| a.saturating_add(s));
        check_depth(deepest)?;
        let (depth, size) = match self.stack.last_mut().ok_or(Ok(Stop))? {
            Item::Value { depth, size } => (depth, size),
            Item::Memo(id) => {
                let slot = self.memo.get_mut(id).ok_or(Ok(Stop))?;
                (&mut slot.0, &mut slot.1)
            }
        };
        *depth = (*depth).max(deepest);
        *size = size.saturating_add(added);
        Ok(())
    }

    fn memoize(&mut self, id: u64) -> Step<()> {
        let item = self.pop()?;
        let value = self.value(item)?;
        self.memo.insert(id, value);
        self.stack.push(Item::Memo(id));
        Ok(())
    }

    fn push_memo(&mut self, id: u64) -> Step<()> {
        if !self.memo.contains_key(&id) {
            return Err(Ok(Stop));
        }
        self.stack.push(Item::Memo(id));
        Ok(())
    }
}

/// A container holding `items`.
fn container(items: &[(usize, u64)]) -> Item {
    Item::Value {
        depth: 1 + items.iter().map(|&(d, _)| d).max().unwrap_or(0),
        size: items.iter().fold(1u64, |a, &(_, s)| a.saturating_add(s)),
    }
}

fn check_depth(depth: usize) -> Step<()> {
    if depth > MAX_DEPTH {
        return Err(Err(format!(
            "the pickle nests more than {MAX_DEPTH} levels deep"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn pickle_reads_python_protocol_4() {
        // pickle.dumps([1, 'x', b'y', None, (2.5, {'a': 1})], protocol=4)
        let bytes = unhex(concat!(
            "80049524000000000000005d94284b018c017894430179944e47400400000000",
            "00007d948c0161944b01738694652e"
        ));
        type Item = (
            i64,
            String,
            serde_bytes::ByteBuf,
            Option<u8>,
            (f64, std::collections::BTreeMap<String, i64>),
        );
        let v: Item = Pickle::decode(&bytes).unwrap();
        assert_eq!(v.0, 1);
        assert_eq!(v.1, "x");
        assert_eq!(&v.2[..], b"y");
        assert_eq!(v.3, None);
        assert_eq!(v.4 .0, 2.5);
        assert_eq!(v.4 .1["a"], 1);
        let value = (10i32, String::from("结束"), vec![1.5f64, -2.0], None::<u8>);
        let mut out = Vec::new();
        Pickle::encode(&value, &mut out).unwrap();
        assert_eq!(
            Pickle::decode::<(i32, String, Vec<f64>, Option<u8>)>(&out).unwrap(),
            value
        );
    }

    #[test]
    fn pickle_big_and_small_integers_round_trip() {
        for v in [0u64, 255, 256, 65_535, 1 << 31, 1 << 32, i64::MAX as u64] {
            let mut out = Vec::new();
            Pickle::encode(&v, &mut out).unwrap();
            assert_eq!(Pickle::decode::<u64>(&out).unwrap(), v);
        }
        // Beyond i64 an int is encoded (Python reads it) but not decoded: a codec error.
        let mut out = Vec::new();
        Pickle::encode(&u64::MAX, &mut out).unwrap();
        assert!(matches!(Pickle::decode::<u64>(&out), Err(Error::Codec(_))));
        for v in [i64::MIN, -1, -256, i32::MIN as i64] {
            let mut out = Vec::new();
            Pickle::encode(&v, &mut out).unwrap();
            assert_eq!(Pickle::decode::<i64>(&out).unwrap(), v);
        }
    }

    #[test]
    fn pickle_misfits_and_garbage_are_codec_errors() {
        let mut out = Vec::new();
        Pickle::encode(&(1i64 << 40), &mut out).unwrap();
        assert!(matches!(Pickle::decode::<u8>(&out), Err(Error::Codec(_))));
        assert!(matches!(
            Pickle::decode::<String>(&out),
            Err(Error::Codec(_))
        ));
        out.push(b'.');
        assert!(matches!(Pickle::decode::<i64>(&out), Err(Error::Codec(_))));
        for garbage in [&b""[..], b"\x80", b"\xff\xff", b"cos\nsystem\n."] {
            assert!(matches!(
                Pickle::decode::<serde_pickle::Value>(garbage),
                Err(Error::Codec(_))
            ));
        }
    }

    #[test]
    fn pickle_refuses_deep_nesting_without_overflowing() {
        // 100,000 nested lists: refused before serde-pickle builds them.
        let mut deep = b"\x80\x04".to_vec();
        deep.extend(std::iter::repeat(b']').take(100_000));
        deep.extend(std::iter::repeat(b'a').take(99_999));
        deep.push(b'.');
        let e = Pickle::decode::<serde_pickle::Value>(&deep).unwrap_err();
        assert!(e.to_string().contains("128 levels"), "{e}");
        // Through the memo: lists appended to a memoised list after the fact.
        let mut memo_deep = b"\x80\x04".to_vec();
        for i in 0..200u8 {
            memo_deep.extend([b']', b'q', i]); // EMPTY_LIST, BINPUT i
            memo_deep.push(b'0'); // POP
        }
        for i in 1..200u8 {
            memo_deep.extend([b'h', i, b'h', i - 1, b'a', b'0']); // GET i, GET i-1, APPEND, POP
        }
        memo_deep.extend([b'h', 199, b'.']);
        assert!(matches!(
            Pickle::decode::<serde_pickle::Value>(&memo_deep),
            Err(Error::Codec(_))
        ));
        // Up to the limit, nesting decodes.
        let nested = (0..100).fold(serde_json::json!(1), |v, _| serde_json::json!([v]));
        let mut out = Vec::new();
        Pickle::encode(&nested, &mut out).unwrap();
        assert!(Pickle::decode::<serde_pickle::Value>(&out).is_ok());
    }

    #[test]
    fn pickle_refuses_memo_amplification() {
        // L0 = [1]; L(i+1) = [L(i), L(i)]: 40 doublings are 2^40 copies in serde-pickle.
        let mut bomb = b"\x80\x04]K\x01a\x94".to_vec();
        for i in 0..40u32 {
            bomb.extend([b']', b'h', i as u8, b'a', b'h', i as u8, b'a', 0x94]);
            bomb.push(b'0');
            bomb.extend([b'h', (i + 1) as u8]);
            bomb.push(b'0');
        }
        bomb.extend([b'h', 40, b'.']);
        let e = Pickle::decode::<serde_pickle::Value>(&bomb).unwrap_err();
        assert!(e.to_string().contains("memo"), "{e}");
        // Python's own sharing (one string used many times) stays well inside the budget.
        let shared: Vec<String> = vec!["same".to_string(); 10_000];
        let mut out = Vec::new();
        Pickle::encode(&shared, &mut out).unwrap();
        assert_eq!(Pickle::decode::<Vec<String>>(&out).unwrap().len(), 10_000);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any bytes: a value or a codec error, never a panic, hang or blow-up.
        #[test]
        fn pickle_decode_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = Pickle::decode::<serde_pickle::Value>(&bytes);
        }

        /// Sequences of real opcodes (containers, marks, memo puts and gets, small ints):
        /// the shapes a crafted pickle is made of.
        #[test]
        fn opcode_soup_never_panics(
            ops in proptest::collection::vec(proptest::sample::select(
                b"(0]}a)selutqhgKN\x94\x85\x86\x87\x8f\x90\x91\x01\x00".to_vec()), 0..80)
        ) {
            let mut bytes = b"\x80\x04".to_vec();
            bytes.extend(ops);
            bytes.push(b'.');
            let _ = Pickle::decode::<serde_pickle::Value>(&bytes);
        }

        /// A valid pickle with a few bytes changed, so the walk goes deep into real opcodes.
        #[test]
        fn mutated_pickles_never_panic(
            flips in proptest::collection::vec((proptest::prelude::any::<usize>(), proptest::prelude::any::<u8>()), 1..6)
        ) {
            let mut bytes = unhex(concat!(
                "80049524000000000000005d94284b018c017894430179944e47400400000000",
                "00007d948c0161944b01738694652e"
            ));
            for (at, b) in flips {
                let n = bytes.len();
                bytes[at % n] = b;
            }
            let _ = Pickle::decode::<serde_pickle::Value>(&bytes);
        }
    }
}
