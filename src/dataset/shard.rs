//! The shard file: a 32-byte header, then `count` tokens, little-endian.
//!
//! | bytes | field |
//! |---|---|
//! | 0..8   | magic `PRETOKEN` |
//! | 8..12  | version, u32 = 1 |
//! | 12..16 | bytes per token, u32: 2 (u16) or 4 (u32) |
//! | 16..24 | token count, u64 |
//! | 24..28 | vocabulary size, u32 (every token is below it) |
//! | 28..32 | reserved, zero |

use super::meta::Checksum;
use anyhow::{Context, Result, bail};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

/// The first 8 bytes of every shard.
pub const MAGIC: &[u8; 8] = b"PRETOKEN";
/// The format version this code writes and reads.
pub const VERSION: u32 = 1;
/// Header size in bytes.
pub const HEADER_LEN: usize = 32;
/// The largest vocabulary a shard may declare (2^24 ids; real vocabularies stay under 2^20).
/// A reader sizes tables and models by this number, so a damaged header must not pass.
pub const MAX_VOCAB: u32 = 1 << 24;

/// A shard's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// 2 or 4.
    pub token_bytes: u32,
    /// Number of tokens after the header.
    pub count: u64,
    /// Every token is below this.
    pub vocab_size: u32,
}

impl Header {
    /// u16 tokens when the vocabulary fits in 16 bits, else u32.
    pub fn for_vocab(vocab_size: usize) -> Header {
        Header {
            token_bytes: if vocab_size <= 1 << 16 { 2 } else { 4 },
            count: 0,
            vocab_size: vocab_size as u32,
        }
    }

    fn to_bytes(self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&self.token_bytes.to_le_bytes());
        h[16..24].copy_from_slice(&self.count.to_le_bytes());
        h[24..28].copy_from_slice(&self.vocab_size.to_le_bytes());
        h
    }

    /// Parse and check a header; `name` is used in errors.
    pub fn parse(bytes: &[u8], name: &str) -> Result<Header> {
        if bytes.len() < HEADER_LEN {
            bail!(
                "{name}: truncated header ({} bytes, expected {HEADER_LEN})",
                bytes.len()
            );
        }
        if &bytes[..8] != MAGIC {
            bail!(
                "{name}: offset 0: wrong magic {:?} (not a token shard)",
                String::from_utf8_lossy(&bytes[..8])
            );
        }
        let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let version = u32_at(8);
        if version != VERSION {
            bail!("{name}: offset 8: version {version}, this build reads version {VERSION}");
        }
        let token_bytes = u32_at(12);
        if token_bytes != 2 && token_bytes != 4 {
            bail!("{name}: offset 12: token size {token_bytes} bytes, expected 2 or 4");
        }
        let count = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
        let vocab_size = u32_at(24);
        let widest = if token_bytes == 2 { 1 << 16 } else { MAX_VOCAB };
        if vocab_size == 0 || vocab_size > widest {
            bail!(
                "{name}: offset 24: vocabulary size {vocab_size}, expected 1 to {widest} for {token_bytes}-byte tokens"
            );
        }
        Ok(Header {
            token_bytes,
            count,
            vocab_size,
        })
    }

    /// The file size the header promises: the header and `count` tokens (`None` on overflow).
    pub fn file_len(&self) -> Option<u64> {
        self.count
            .checked_mul(self.token_bytes as u64)?
            .checked_add(HEADER_LEN as u64)
    }

    /// Checks that a file of `len` bytes holds exactly the promised tokens.
    fn check_len(&self, len: u64, name: &str) -> Result<()> {
        let want = self.file_len().unwrap_or(u64::MAX);
        if len != want {
            bail!(
                "{name}: offset {}: file is {len} bytes but the header promises {} tokens ({want} bytes){}",
                len.min(want),
                self.count,
                if len < want { ", truncated" } else { "" }
            );
        }
        Ok(())
    }
}

/// Read a shard's header only, checked against the file's size.
pub fn read_header(path: &Path) -> Result<Header> {
    use std::io::Read;
    let name = path.display().to_string();
    let f = std::fs::File::open(path).with_context(|| format!("opening {name}"))?;
    let len = f
        .metadata()
        .with_context(|| format!("reading {name}"))?
        .len();
    let mut buf = Vec::with_capacity(HEADER_LEN);
    f.take(HEADER_LEN as u64)
        .read_to_end(&mut buf)
        .with_context(|| format!("reading {name}"))?;
    let h = Header::parse(&buf, &name)?;
    h.check_len(len, &name)?;
    Ok(h)
}

/// Read and validate a whole shard: header, exact size, every token below the vocabulary size.
/// Errors name the shard and the byte offset.
pub fn read_shard(path: &Path) -> Result<(Header, Vec<u32>)> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).with_context(|| format!("reading {name}"))?;
    let h = Header::parse(&bytes, &name)?;
    h.check_len(bytes.len() as u64, &name)?;
    let body = &bytes[HEADER_LEN..];
    let tokens: Vec<u32> = if h.token_bytes == 2 {
        body.chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]) as u32)
            .collect()
    } else {
        body.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    if let Some(i) = tokens.iter().position(|&t| t >= h.vocab_size) {
        bail!(
            "{name}: offset {}: token {} is not below the vocabulary size {}",
            HEADER_LEN + i * h.token_bytes as usize,
            tokens[i],
            h.vocab_size
        );
    }
    Ok((h, tokens))
}

/// Writes one shard: tokens stream to a temp file, the header is filled in and the file renamed
/// into place by [`ShardWriter::finish`]. Dropped unfinished (an error on the way), it removes
/// its temp file.
pub struct ShardWriter {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<std::io::BufWriter<std::fs::File>>,
    header: Header,
    checksum: Checksum,
}

impl ShardWriter {
    /// Start a shard at `path` for a vocabulary of `vocab_size`.
    pub fn create(path: &Path, vocab_size: usize) -> Result<ShardWriter> {
        // The reader's limits: a shard written here must read back.
        if vocab_size == 0 || vocab_size > MAX_VOCAB as usize {
            bail!(
                "{}: vocabulary size {vocab_size}, expected 1 to {MAX_VOCAB}",
                path.display()
            );
        }
        let tmp = crate::cli::temp_path(path);
        let file =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let header = Header::for_vocab(vocab_size);
        let mut w = ShardWriter {
            path: path.to_path_buf(),
            tmp,
            out: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
            header,
            checksum: Checksum::new(),
        };
        w.put(&header.to_bytes())?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let out = self.out.as_mut().expect("open until finished");
        out.write_all(bytes)
            .with_context(|| format!("writing {}", self.tmp.display()))
    }

    /// Append tokens (each must be below the vocabulary size).
    pub fn write(&mut self, tokens: &[u32]) -> Result<()> {
        let mut buf = Vec::with_capacity(tokens.len() * self.header.token_bytes as usize);
        for &t in tokens {
            assert!(
                t < self.header.vocab_size,
                "shard write: token {t} >= vocab size {}",
                self.header.vocab_size
            );
            if self.header.token_bytes == 2 {
                buf.extend_from_slice(&(t as u16).to_le_bytes());
            } else {
                buf.extend_from_slice(&t.to_le_bytes());
            }
        }
        self.put(&buf)?;
        self.checksum.update(&buf);
        self.header.count += tokens.len() as u64;
        Ok(())
    }

    /// Tokens written so far.
    pub fn count(&self) -> u64 {
        self.header.count
    }

    /// The checksum of the token bytes written so far (what `meta.json` records).
    pub fn checksum(&self) -> u64 {
        self.checksum.value()
    }

    /// Write the header and move the shard into place.
    pub fn finish(mut self) -> Result<Header> {
        let tmp = self.tmp.clone();
        let mut out = self.out.take().expect("open until finished");
        let file = out
            .seek(std::io::SeekFrom::Start(0))
            .and_then(|_| out.write_all(&self.header.to_bytes()))
            .and_then(|()| out.into_inner().map_err(|e| e.into_error()))
            .and_then(|file| file.sync_all().map(|()| file))
            .with_context(|| format!("writing {}", tmp.display()))?;
        drop(file);
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("renaming to {}", self.path.display()))?;
        self.tmp = PathBuf::new(); // nothing left to remove
        Ok(self.header)
    }
}

impl Drop for ShardWriter {
    fn drop(&mut self) {
        drop(self.out.take());
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Write a whole shard in one call.
pub fn write_shard(path: &Path, tokens: &[u32], vocab_size: usize) -> Result<Header> {
    let mut w = ShardWriter::create(path, vocab_size)?;
    w.write(tokens)?;
    w.finish()
}
