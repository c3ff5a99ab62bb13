//! Mutations of valid inputs, each drawn from the seeded generator: bit flips, truncations,
//! huge numbers in place of numbers, values of the wrong type, deep nesting, random bytes,
//! repeated slices; and inputs of random bytes altogether.

use crate::common::{Draw, Rng};

/// Numbers that break readers: past u32, past u64, negative, fractional, huge exponents.
const HUGE_NUMBERS: &[&str] = &[
    "4000000000",
    "4294967295",
    "4294967296",
    "2147483648",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999",
    "-1",
    "0",
    "1.5",
    "1e308",
    "-0",
];

/// Values of the wrong type for any field.
const WRONG_TYPES: &[&str] = &[
    "null",
    "true",
    "\"x\"",
    "[]",
    "{}",
    "[1,2]",
    "{\"a\":1}",
    "\"\"",
    "0",
];

/// One to three mutations of `valid`.
pub fn mutate(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let mut out = valid.to_vec();
    for _ in 0..1 + rng.index(3) {
        out = mutate_once(rng, out);
    }
    out
}

fn mutate_once(rng: &mut Rng, mut b: Vec<u8>) -> Vec<u8> {
    match rng.index(9) {
        0 => flip_bits(rng, &mut b),
        1 => b.truncate(rng.index(b.len() + 1)),
        2 => replace_number(rng, &mut b, HUGE_NUMBERS),
        3 => replace_value(rng, &mut b),
        4 => {
            let deep = nesting(rng);
            insert(rng, &mut b, &deep)
        }
        5 => {
            let junk = random_bytes(rng, 64);
            insert(rng, &mut b, &junk)
        }
        6 => overwrite(rng, &mut b),
        7 => repeat_slice(rng, &mut b),
        _ => delete_slice(rng, &mut b),
    }
    b
}

/// Random bytes, up to `max` of them: half the time printable ASCII and JSON punctuation.
pub fn random_bytes(rng: &mut Rng, max: usize) -> Vec<u8> {
    const PUNCT: &[u8] = b"{}[]\":,0123456789 -.e\nabc\\";
    let len = rng.index(max + 1);
    let text = rng.index(2) == 0;
    (0..len)
        .map(|_| {
            if text {
                PUNCT[rng.index(PUNCT.len())]
            } else {
                rng.index(256) as u8
            }
        })
        .collect()
}

fn flip_bits(rng: &mut Rng, b: &mut [u8]) {
    if b.is_empty() {
        return;
    }
    for _ in 0..1 + rng.index(8) {
        let i = rng.index(b.len());
        b[i] ^= 1 << rng.index(8);
    }
}

/// Replaces one run of ASCII digits with one of `numbers`.
pub fn replace_number(rng: &mut Rng, b: &mut Vec<u8>, numbers: &[&str]) {
    let runs = digit_runs(b);
    if runs.is_empty() {
        return;
    }
    let (start, end) = runs[rng.index(runs.len())];
    let with = numbers[rng.index(numbers.len())].as_bytes();
    b.splice(start..end, with.iter().copied());
}

/// Replaces the value after one `:` (up to the next `,` or `}`) with a value of another type.
fn replace_value(rng: &mut Rng, b: &mut Vec<u8>) {
    let colons: Vec<usize> = (0..b.len()).filter(|&i| b[i] == b':').collect();
    if colons.is_empty() {
        return;
    }
    let start = colons[rng.index(colons.len())] + 1;
    let end = (start..b.len())
        .find(|&i| b[i] == b',' || b[i] == b'}')
        .unwrap_or(b.len());
    let with = WRONG_TYPES[rng.index(WRONG_TYPES.len())].as_bytes();
    b.splice(start..end, with.iter().copied());
}

/// Deeply nested arrays or objects, closed or not.
fn nesting(rng: &mut Rng) -> Vec<u8> {
    let depth = 1 + rng.index(5000);
    let (open, close): (&[u8], &[u8]) = if rng.index(2) == 0 {
        (b"[", b"]")
    } else {
        (b"{\"a\":", b"}")
    };
    let mut out = open.repeat(depth);
    if rng.index(2) == 0 {
        out.extend(close.repeat(depth));
    }
    out
}

fn insert(rng: &mut Rng, b: &mut Vec<u8>, what: &[u8]) {
    let at = rng.index(b.len() + 1);
    b.splice(at..at, what.iter().copied());
}

fn overwrite(rng: &mut Rng, b: &mut [u8]) {
    if b.is_empty() {
        return;
    }
    let at = rng.index(b.len());
    let len = (1 + rng.index(16)).min(b.len() - at);
    for x in &mut b[at..at + len] {
        *x = rng.index(256) as u8;
    }
}

fn repeat_slice(rng: &mut Rng, b: &mut Vec<u8>) {
    if b.is_empty() {
        return;
    }
    let at = rng.index(b.len());
    let len = (1 + rng.index(256)).min(b.len() - at);
    let piece = b[at..at + len].repeat(1 + rng.index(8));
    b.splice(at..at, piece);
}

fn delete_slice(rng: &mut Rng, b: &mut Vec<u8>) {
    if b.is_empty() {
        return;
    }
    let at = rng.index(b.len());
    let len = (1 + rng.index(64)).min(b.len() - at);
    b.drain(at..at + len);
}

/// The (start, end) of every run of ASCII digits.
fn digit_runs(b: &[u8]) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((start, i));
        } else {
            i += 1;
        }
    }
    runs
}

/// Writes a random little-endian u32 or u64 (often an extreme one) at a random offset of the
/// first `within` bytes: huge counts and sizes in a binary header.
pub fn poke_number(rng: &mut Rng, b: &mut [u8], within: usize) {
    let within = within.min(b.len());
    let extreme = [
        0,
        1,
        u32::MAX as u64,
        1 << 31,
        1 << 32,
        u64::MAX,
        u64::MAX / 2,
    ];
    let v = if rng.index(2) == 0 {
        extreme[rng.index(extreme.len())]
    } else {
        rng.next_u64() >> rng.index(64)
    };
    let bytes = v.to_le_bytes();
    let width = if rng.index(2) == 0 { 4 } else { 8 };
    if within < width {
        return;
    }
    let at = rng.index(within - width + 1);
    b[at..at + width].copy_from_slice(&bytes[..width]);
}

/// What a file of a known kind goes through: half the time an edit that keeps its syntax
/// ([`Kind::Json`] documents, [`Kind::Lines`] files), else byte mutations or random bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Json,
    Lines,
    Bytes,
}

/// A damaged copy of `valid`, a file of `kind`.
pub fn damage(rng: &mut Rng, valid: &[u8], kind: Kind) -> Vec<u8> {
    match (rng.index(10), kind) {
        (0, _) => random_bytes(rng, 4096),
        (1..=5, Kind::Json) => super::structured::mutate_json(rng, valid),
        (1..=5, Kind::Lines) => super::structured::mutate_lines(rng, valid),
        _ => mutate(rng, valid),
    }
}
