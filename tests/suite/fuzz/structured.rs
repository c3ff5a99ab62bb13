//! Mutations that keep the syntax and break the meaning, so inputs get past the parser to the
//! checks behind it: a JSON document edited at one random node, a line file edited line by line.

use crate::common::{Draw, Rng};
use serde_json::{Value, json};

/// `valid` (a JSON document) with one to three random nodes edited, as bytes.
pub fn mutate_json(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let mut doc: Value = serde_json::from_slice(valid).expect("a valid JSON seed");
    for _ in 0..1 + rng.index(3) {
        let count = count_nodes(&doc);
        let target = rng.index(count);
        edit_nth(rng, &mut doc, target);
    }
    serde_json::to_vec(&doc).expect("a JSON value serialises")
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(m) => m.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Edits the `n`-th node in pre-order; returns how many nodes were passed on the way.
fn edit_nth(rng: &mut Rng, v: &mut Value, n: usize) -> usize {
    if n == 0 {
        edit(rng, v);
        return 1;
    }
    let mut seen = 1;
    let children: Vec<&mut Value> = match v {
        Value::Array(a) => a.iter_mut().collect(),
        Value::Object(m) => m.values_mut().collect(),
        _ => return 1,
    };
    for child in children {
        let size = count_nodes(child);
        if n - seen < size {
            edit_nth(rng, child, n - seen);
            return seen + size;
        }
        seen += size;
    }
    seen
}

/// One edit of a node: a huge or odd number, a value of another type, an empty or odd string,
/// a removed, duplicated or added child, or deep nesting around it.
fn edit(rng: &mut Rng, v: &mut Value) {
    let odd_numbers = [
        json!(4_000_000_000u64),
        json!(u64::MAX),
        json!(u32::MAX),
        json!(1u64 << 31),
        json!(-1),
        json!(0),
        json!(1.5),
        json!(1e300),
    ];
    let odd_strings = ["", " ", "Ġ", "<|endoftext|>", "a b c", "\u{0}", "ĠĠĠĠ"];
    match rng.index(7) {
        0 => *v = odd_numbers[rng.index(odd_numbers.len())].clone(),
        1 => *v = json!(odd_strings[rng.index(odd_strings.len())]),
        2 => *v = [json!(null), json!(true), json!([]), json!({})][rng.index(4)].clone(),
        3 => remove_child(rng, v),
        4 => duplicate_child(rng, v),
        5 => add_child(rng, v),
        _ => {
            for _ in 0..1 + rng.index(200) {
                *v = json!([v.take()]);
            }
        }
    }
}

fn remove_child(rng: &mut Rng, v: &mut Value) {
    match v {
        Value::Array(a) if !a.is_empty() => {
            a.remove(rng.index(a.len()));
        }
        Value::Object(m) if !m.is_empty() => {
            let key = m.keys().nth(rng.index(m.len())).cloned().unwrap();
            m.remove(&key);
        }
        _ => {}
    }
}

fn duplicate_child(rng: &mut Rng, v: &mut Value) {
    match v {
        Value::Array(a) if !a.is_empty() => {
            let x = a[rng.index(a.len())].clone();
            a.insert(rng.index(a.len() + 1), x);
        }
        Value::Object(m) if !m.is_empty() => {
            // Another key with the same value (e.g. two tokens with one id).
            let x = m.values().nth(rng.index(m.len())).cloned().unwrap();
            m.insert(format!("dup{}", rng.index(1000)), x);
        }
        _ => {}
    }
}

fn add_child(rng: &mut Rng, v: &mut Value) {
    let x = json!(rng.index(1000));
    match v {
        Value::Array(a) => a.push(x),
        Value::Object(m) => {
            m.insert(format!("new{}", rng.index(1000)), x);
        }
        _ => {}
    }
}

/// `valid` (a text file of lines) with one to three lines removed, repeated, swapped, emptied,
/// cut, or with a number in them replaced.
pub fn mutate_lines(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(valid);
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    for _ in 0..1 + rng.index(3) {
        if lines.is_empty() {
            break;
        }
        let i = rng.index(lines.len());
        match rng.index(6) {
            0 => {
                lines.remove(i);
            }
            1 => lines.insert(rng.index(lines.len() + 1), lines[i].clone()),
            2 => {
                let j = rng.index(lines.len());
                lines.swap(i, j);
            }
            3 => lines[i].clear(),
            4 => {
                let cut = rng.index(lines[i].len() + 1);
                let cut = (0..=cut)
                    .rev()
                    .find(|&c| lines[i].is_char_boundary(c))
                    .unwrap();
                lines[i].truncate(cut);
            }
            _ => {
                let mut b = std::mem::take(&mut lines[i]).into_bytes();
                super::mutate::replace_number(
                    rng,
                    &mut b,
                    &["4000000000", "-1", "0", "99999999999999999999"],
                );
                lines[i] = String::from_utf8_lossy(&b).into_owned();
            }
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out.into_bytes()
}
