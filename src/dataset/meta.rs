//! `meta.json`: what one `tokenize` run wrote into a dataset folder, and the checks that the
//! folder still holds exactly that.
//!
//! Besides the run's counts (`summary`), `meta.json` lists every shard with its token count, its
//! size in bytes and a checksum of its token bytes (64-bit FNV-1a of everything after the
//! header). Two checks read it:
//!
//! - [`check_layout`], cheap (no shard is read): the folder's `train_*.bin` and `val_*.bin` are
//!   exactly the listed shards, each of the listed size. The [`Loader`](super::Loader) runs it, so
//!   `train` refuses a folder that mixes shards of two runs.
//! - [`check_shard`], once a shard has been read: its token count and checksum are the listed
//!   ones. `tokenize --check` runs both.
//!
//! A folder without `meta.json` (shards written by hand, as the tests do) is read as it is. A
//! `meta.json` without the shard list was written by an older build and cannot be checked: it is
//! a one-line error asking to run `tokenize` again.

use super::shard::{HEADER_LEN, Header};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

/// The file name of the metadata in a dataset folder.
pub const META_FILE: &str = "meta.json";
/// A `meta.json` larger than this is not ours (it holds about 100 bytes per shard).
pub const MAX_META_BYTES: u64 = 64 << 20;

/// 64-bit FNV-1a: one xor and one multiply per byte. Not a defence against tampering; it
/// catches a shard that is not the one `tokenize` wrote.
#[derive(Clone, Copy, Debug)]
pub struct Checksum(u64);

impl Checksum {
    pub fn new() -> Checksum {
        Checksum(0xcbf2_9ce4_8422_2325)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn value(&self) -> u64 {
        self.0
    }

    /// The checksum of `tokens` stored `token_bytes` bytes each, little-endian (as in a shard).
    pub fn of_tokens(tokens: &[u32], token_bytes: u32) -> u64 {
        let mut c = Checksum::new();
        for &t in tokens {
            match token_bytes {
                2 => c.update(&(t as u16).to_le_bytes()),
                _ => c.update(&t.to_le_bytes()),
            }
        }
        c.value()
    }
}

impl Default for Checksum {
    fn default() -> Self {
        Checksum::new()
    }
}

/// One shard as `meta.json` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// File name inside the folder, e.g. `train_000000.bin`.
    pub file: String,
    pub tokens: u64,
    /// File size: the header and the tokens.
    pub bytes: u64,
    /// [`Checksum`] of the token bytes, 16 hex digits.
    pub fnv1a64: String,
}

impl ShardEntry {
    /// The entry of a finished shard.
    pub fn new(file: &str, header: &Header, checksum: u64) -> ShardEntry {
        ShardEntry {
            file: file.to_string(),
            tokens: header.count,
            bytes: HEADER_LEN as u64 + header.count * header.token_bytes as u64,
            fnv1a64: format!("{checksum:016x}"),
        }
    }
}

/// The part of `meta.json` the checks read.
#[derive(Deserialize)]
struct MetaShards {
    shards: Option<Vec<ShardEntry>>,
}

/// Write `meta.json` into `dir`: the format, the run's `summary` and the shard list.
pub fn write(dir: &Path, summary: &impl Serialize, shards: &[ShardEntry]) -> Result<()> {
    let meta = serde_json::json!({
        "format": "pretrain token shards",
        "version": super::shard::VERSION,
        "tokenizer": "tokenizer.json",
        "summary": summary,
        "shards": shards,
    });
    let text = serde_json::to_string_pretty(&meta).context("serializing meta.json")?;
    crate::cli::write_atomic(&dir.join(META_FILE), text.as_bytes())
}

/// The shards `dir/meta.json` lists; `None` when the folder has no `meta.json`.
pub fn read(dir: &Path) -> Result<Option<Vec<ShardEntry>>> {
    let path = dir.join(META_FILE);
    let size = match std::fs::metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        r => r
            .with_context(|| format!("reading {}", path.display()))?
            .len(),
    };
    if size > MAX_META_BYTES {
        bail!(
            "{}: {size} bytes, more than the {MAX_META_BYTES} a meta.json can be",
            path.display()
        );
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let meta: MetaShards = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a tokenize meta.json", path.display()))?;
    match meta.shards {
        Some(list) => Ok(Some(list)),
        None => bail!(
            "{}: lists no shard sizes and checksums (an older tokenize wrote it); run tokenize \
             again to rebuild {}",
            path.display(),
            dir.display()
        ),
    }
}

/// Recover a half-done swap of `dir`, then check that its shards are the ones `meta.json` lists,
/// by name and size. Returns the list (`None` when there is no `meta.json`).
pub fn check_layout(dir: &Path) -> Result<Option<Vec<ShardEntry>>> {
    crate::cli::outputs::recover(dir)?;
    let Some(listed) = read(dir)? else {
        return Ok(None);
    };
    let on_disk = shard_files(dir)?;
    let names: BTreeSet<&str> = listed.iter().map(|e| e.file.as_str()).collect();
    let disk: BTreeSet<&str> = on_disk.iter().map(String::as_str).collect();
    if names != disk {
        let missing: Vec<_> = names.difference(&disk).collect();
        let extra: Vec<_> = disk.difference(&names).collect();
        bail!(
            "{}: meta.json lists {} shards but the folder holds {} (missing {missing:?}, not \
             listed {extra:?}): not the output of one tokenize run; run tokenize again",
            dir.display(),
            names.len(),
            disk.len()
        );
    }
    for e in &listed {
        let path = dir.join(&e.file);
        let len = std::fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        if len != e.bytes {
            bail!(
                "{}: {len} bytes, but meta.json lists {} bytes ({} tokens): not the shard \
                 tokenize wrote; run tokenize again",
                path.display(),
                e.bytes,
                e.tokens
            );
        }
    }
    Ok(Some(listed))
}

/// The names of the `train_*.bin` and `val_*.bin` files in `dir`.
fn shard_files(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("reading folder {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading folder {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_shard_name(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// `train_*.bin` or `val_*.bin`.
pub fn is_shard_name(name: &str) -> bool {
    (name.starts_with("train_") || name.starts_with("val_")) && name.ends_with(".bin")
}

/// Whether `name` is a file `tokenize` writes into a dataset folder.
pub fn is_dataset_file(name: &str) -> bool {
    name == META_FILE || name == "tokenizer.json" || is_shard_name(name)
}

/// Check a shard that was read against its `meta.json` entry: token count and checksum.
pub fn check_shard(entry: &ShardEntry, path: &Path, header: &Header, tokens: &[u32]) -> Result<()> {
    if header.count != entry.tokens {
        bail!(
            "{}: {} tokens, but meta.json lists {}; run tokenize again",
            path.display(),
            header.count,
            entry.tokens
        );
    }
    let sum = format!("{:016x}", Checksum::of_tokens(tokens, header.token_bytes));
    if sum != entry.fnv1a64 {
        bail!(
            "{}: checksum {sum}, but meta.json lists {}: the tokens changed since tokenize \
             wrote them; run tokenize again",
            path.display(),
            entry.fnv1a64
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_vectors() {
        // From the FNV reference (draft-eastlake-fnv): "" and "a".
        assert_eq!(Checksum::new().value(), 0xcbf29ce484222325);
        let mut c = Checksum::new();
        c.update(b"a");
        assert_eq!(c.value(), 0xaf63dc4c8601ec8c);
        assert_eq!(
            Checksum::of_tokens(&[0x6261], 2),
            {
                let mut c = Checksum::new();
                c.update(b"ab");
                c.value()
            },
            "u16 tokens are hashed as their little-endian bytes"
        );
    }
}
