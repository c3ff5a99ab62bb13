//! Our Gopher, C4 and FineWeb rules against datatrove's, without Python: the fixture holds
//! datatrove 0.10.1's verdict for 101 real documents (the English books cut into pieces) and 17
//! synthetic ones, plus the text its C4 filter left. It is written by
//! `benches/compare/clean_datatrove.py --write-fixture tests/fixtures/clean/datatrove_verdicts.jsonl`.

use pretrain::data::filters::{RuleSets, apply_rules};
use serde_json::Value;

/// datatrove's "<filter name>:<reason>" as our reason string.
fn ours(dt: &str) -> String {
    let (family, reason) = dt.split_once(':').expect("family:reason");
    if family.contains("Gopher Repetition") {
        match reason.strip_prefix("duplicated_") {
            Some(rest) => format!("gopher_dup_{}_gram", rest.trim_end_matches("_n_grams")),
            None => format!("gopher_{reason}"),
        }
    } else if family.contains("Gopher Quality") {
        match reason {
            "gopher_below_avg_threshold" => "gopher_below_avg_word_len".into(),
            "gopher_above_avg_threshold" => "gopher_above_avg_word_len".into(),
            "gopher_enough_stop_words" => "gopher_few_stop_words".into(),
            r => r.into(),
        }
    } else if family.contains("C4") {
        format!("c4_{reason}")
    } else {
        format!("fineweb_{reason}")
    }
}

#[test]
fn verdicts_and_c4_text_match_datatrove() {
    let raw = std::fs::read_to_string("tests/fixtures/clean/datatrove_verdicts.jsonl").unwrap();
    let mut n = 0;
    for (i, line) in raw.lines().enumerate() {
        let rec: Value = serde_json::from_str(line).unwrap();
        let text = rec["text"].as_str().unwrap();
        let dt = rec["datatrove"].as_str().unwrap();
        let got = apply_rules(text, &RuleSets::WEB);
        match (dt, got) {
            ("keep", Ok(rewritten)) => {
                let kept = rewritten.as_deref().unwrap_or(text);
                assert_eq!(
                    kept,
                    rec["kept_text"].as_str().unwrap(),
                    "doc {i}: C4 text differs"
                );
            }
            ("keep", Err(r)) => panic!("doc {i}: we remove ({r}), datatrove keeps: {text:.80}"),
            (dt, Ok(_)) => panic!("doc {i}: we keep, datatrove removes ({dt}): {text:.80}"),
            (dt, Err(r)) => assert_eq!(r, ours(dt), "doc {i}: different reason: {text:.80}"),
        }
        n += 1;
    }
    assert!(n > 100, "fixture too small: {n}");
}
