//! The binary files: token shards (a 32-byte header, then the tokens) and safetensors (an
//! 8-byte length, a JSON header, then the data), damaged in their numbers as well as their bytes.

use super::mutate::{Kind, mutate, poke_number, random_bytes};
use super::{check, each_input};
use crate::common::{Draw, Rng, fixture, temp_dir};
use pretrain::dataset::shard::{HEADER_LEN, Header, read_header, read_shard, write_shard};
use pretrain::model::checkpoint::{load_gpt2_params, read_safetensors};
use pretrain::model::config::GptConfig;

/// Two valid shards: u16 tokens (a 300-token vocabulary) and u32 tokens (70,000).
fn valid_shards(rng: &mut Rng) -> Vec<Vec<u8>> {
    let dir = temp_dir("fuzz-shards-valid");
    [300u32, 70_000]
        .iter()
        .map(|&vocab| {
            let tokens: Vec<u32> = (0..200).map(|_| rng.below(vocab as u64) as u32).collect();
            let path = dir.join(format!("train_{vocab}.bin"));
            write_shard(&path, &tokens, vocab as usize).unwrap();
            std::fs::read(&path).unwrap()
        })
        .collect()
}

/// Damage to a binary file: its header's numbers, its bytes, or random bytes.
fn damage(rng: &mut Rng, valid: &[u8], header_len: usize) -> Vec<u8> {
    match rng.index(4) {
        0 => {
            let mut b = valid.to_vec();
            poke_number(rng, &mut b, header_len);
            b
        }
        1 => random_bytes(rng, 256),
        _ => mutate(rng, valid),
    }
}

#[test]
fn shards_load_or_refuse() {
    let dir = temp_dir("fuzz-shards");
    let mut rng = Rng::new(31);
    let valid = valid_shards(&mut rng);
    let path = dir.join("train_000.bin");
    each_input("shard", 32, |rng, what| {
        let which = rng.index(valid.len());
        let input = damage(rng, &valid[which], HEADER_LEN);
        check(what, &input, |b| {
            std::fs::write(&path, b)?;
            let parsed = Header::parse(b, "input");
            let header = read_header(&path);
            let shard = read_shard(&path);
            // The three readers agree on what a good header is.
            if let (Ok(p), Ok(h)) = (&parsed, &header) {
                anyhow::ensure!(p == h, "parse and read_header disagree");
            }
            if let Ok((h, tokens)) = &shard {
                anyhow::ensure!(tokens.len() as u64 == h.count, "count and tokens disagree");
                anyhow::ensure!(header.is_ok(), "read_shard passes what read_header refuses");
            }
            shard.map(|_| ())
        })
    });
}

/// The parts of a safetensors file: its JSON header and its data.
fn split_safetensors(bytes: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (bytes[8..8 + n].to_vec(), bytes[8 + n..].to_vec())
}

/// A damaged safetensors file: the JSON header mutated (its length prefix fixed or not), the
/// prefix poked, or any byte of the file.
fn damage_safetensors(rng: &mut Rng, valid: &[u8]) -> Vec<u8> {
    let (json, data) = split_safetensors(valid);
    match rng.index(4) {
        0 | 1 => {
            let json = super::mutate::damage(rng, &json, Kind::Json);
            let mut len = (json.len() as u64).to_le_bytes();
            if rng.index(4) == 0 {
                poke_number(rng, &mut len, 8);
            }
            [&len[..], &json, &data].concat()
        }
        2 => damage(rng, valid, 8),
        _ => mutate(rng, valid),
    }
}

#[test]
fn safetensors_load_or_refuse() {
    let dir = temp_dir("fuzz-safetensors");
    let valid = std::fs::read(fixture("gpt2_tiny/model.safetensors")).unwrap();
    let config = GptConfig::from_hf_json(&fixture("gpt2_tiny/config.json")).unwrap();
    let path = dir.join("model.safetensors");
    each_input("safetensors", 33, |rng, what| {
        let input = damage_safetensors(rng, &valid);
        check(what, &input, |b| {
            std::fs::write(&path, b)?;
            let all = read_safetensors(&path);
            let params = load_gpt2_params(&path, &config);
            anyhow::ensure!(
                all.is_ok() || params.is_err(),
                "load_gpt2_params passes what read_safetensors refuses"
            );
            params.map(|_| ())
        })
    });
}
