//! The small JSON files of a checkpoint: `config.json` (whose sizes then drive the loading of
//! the weights) and `trainer_state.json` (parsed by `run_dir::parse_state`, then restored
//! into a data loader).

use super::mutate::{Kind, damage};
use super::{check, each_input};
use crate::common::{fixture, temp_dir};
use pretrain::dataset::loader::{Loader, Position};
use pretrain::model::checkpoint::load_gpt2_params;
use pretrain::model::config::GptConfig;
use pretrain::train::run_dir::{TrainerState, parse_state};
use std::path::Path;

#[test]
fn config_json_loads_or_refuses() {
    let dir = temp_dir("fuzz-config-json");
    let valid = std::fs::read(fixture("gpt2_tiny/config.json")).unwrap();
    let weights = fixture("gpt2_tiny/model.safetensors");
    let path = dir.join("config.json");
    each_input("config.json", 41, |rng, what| {
        let input = damage(rng, &valid, Kind::Json);
        check(what, &input, |b| {
            std::fs::write(&path, b)?;
            let config = GptConfig::from_hf_json(&path)?;
            // The sizes it accepts must be safe to load weights with.
            config.num_params();
            load_gpt2_params(&weights, &config)?;
            Ok(())
        })
    });
}

#[test]
fn trainer_state_json_parses_or_refuses() {
    let state = TrainerState {
        step: 120,
        world_size: 1,
        global_batch: Some(8),
        train_position: Position {
            offset: 30_720,
            rng: 0x9e37_79b9_7f4a_7c15,
            batches: 120,
            epoch: 1,
        },
    };
    let valid = serde_json::to_vec_pretty(&state).unwrap();
    let path = Path::new("trainer_state.json");
    each_input("trainer_state.json", 42, |rng, what| {
        let input = damage(rng, &valid, Kind::Json);
        check(what, &input, |b| {
            let state = parse_state(std::str::from_utf8(b)?, path)?;
            // A state that parses must restore a loader or be refused by it, and the loader
            // must then draw batches from where it says.
            for sequential in [true, false] {
                let tokens = (0..40_000).map(|i| i % 300).collect();
                let mut loader = Loader::from_tokens(tokens, 300, 2, 16, 7, sequential)?;
                loader.restore(state.train_position)?;
                loader.next_batch();
            }
            Ok(())
        })
    });
}
