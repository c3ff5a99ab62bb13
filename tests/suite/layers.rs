//! The layers run one way: binaries → train → sample → model → tensor → {cpu, cuda}, with the
//! data wings (data → tokenizer → dataset) below train and `cli` under everything. This test
//! reads every source file under `src/`, resolves each `crate::…` and `super::…` path to the
//! module it names, and fails on an import that the table below does not allow.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each layer and the layers it may use (besides itself).
const ALLOWED: &[(&str, &[&str])] = &[
    ("cli", &[]),
    ("data", &["cli"]),
    ("tokenizer", &["cli", "data"]),
    ("dataset", &["cli", "data", "tokenizer"]),
    ("tensor::cpu", &["cli"]),
    ("tensor::cuda", &["cli"]),
    ("tensor", &["cli", "tensor::cpu", "tensor::cuda"]),
    ("model", &["cli", "tensor"]),
    ("sample", &["cli", "model", "tensor", "tokenizer"]),
    (
        "train",
        &[
            "cli",
            "data",
            "tokenizer",
            "dataset",
            "tensor",
            "model",
            "sample",
        ],
    ),
];

/// Macros exported at the crate root, and the layer they belong to.
const ROOT_MACROS: &[(&str, &str)] = &[
    ("info", "cli"),
    ("detail", "cli"),
    ("has_common", "cli"),
    ("kargs", "tensor::cuda"),
];

/// The module path of a source file: `src/tensor/cpu/matmul/v4_simd.rs` → `tensor::cpu::matmul::v4_simd`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

/// The layer a module path belongs to (`None` for the crate root and the binaries).
fn layer_of(path: &[String]) -> Option<String> {
    let first = path.first()?;
    if first == "bin" {
        return None;
    }
    if first == "tensor" && matches!(path.get(1).map(String::as_str), Some("cpu" | "cuda")) {
        return Some(format!("tensor::{}", path[1]));
    }
    Some(first.clone())
}

/// Every path a line refers to through `crate::` or `super::`, resolved from module `here`.
fn referenced(line: &str, here: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let code = line.split("//").next().unwrap_or("");
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let tail = &rest[at + 7..];
        out.extend(expand(tail));
        rest = tail;
    }
    // super:: chains, from the module this file defines.
    let mut rest = code;
    while let Some(at) = rest.find("super::") {
        let before = &rest[..at];
        if before.ends_with("::") {
            rest = &rest[at + 7..];
            continue;
        }
        // `super` of module a::b (file a/b.rs or a/b/mod.rs) is a.
        let mut base: Vec<String> = here.to_vec();
        let mut tail = &rest[at..];
        while let Some(t) = tail.strip_prefix("super::") {
            base.pop();
            tail = t;
        }
        for mut p in expand(tail) {
            let mut full = base.clone();
            full.append(&mut p);
            out.push(full);
        }
        rest = &rest[at + 7..];
    }
    out
}

/// `a::b::{c, d}` → `[[a, b, c], [a, b, d]]` (only the first level of braces matters here).
fn expand(tail: &str) -> Vec<Vec<String>> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    if let Some(inner) = tail.strip_prefix('{') {
        let body = inner.split('}').next().unwrap_or("");
        return body
            .split(',')
            .map(|s| vec![ident(s.trim())])
            .filter(|v| !v[0].is_empty())
            .collect();
    }
    let mut path = Vec::new();
    let mut t = tail;
    loop {
        let id = ident(t);
        if id.is_empty() {
            break;
        }
        t = &t[id.len()..];
        path.push(id);
        match t.strip_prefix("::") {
            Some(next) if next.starts_with('{') => {
                return expand(next)
                    .into_iter()
                    .map(|mut v| {
                        let mut p = path.clone();
                        p.append(&mut v);
                        p
                    })
                    .collect();
            }
            Some(next) => t = next,
            None => break,
        }
    }
    vec![path]
}

/// Inline modules (`mod tests { … }`) open at a line, tracked by brace depth, so that `super`
/// inside them resolves from the right module.
#[derive(Default)]
struct InlineMods {
    depth: i64,
    open: Vec<(String, i64)>,
}

impl InlineMods {
    fn names(&self) -> Vec<String> {
        self.open.iter().map(|(n, _)| n.clone()).collect()
    }

    fn advance(&mut self, line: &str) {
        let code = line.split("//").next().unwrap_or("");
        let t = code.trim_start();
        let t = t.strip_prefix("pub ").unwrap_or(t);
        if let Some(rest) = t.strip_prefix("mod ")
            && rest.trim_end().ends_with('{')
        {
            let name = rest.trim_end().trim_end_matches('{').trim().to_string();
            self.open.push((name, self.depth));
        }
        for ch in code.chars() {
            match ch {
                '{' => self.depth += 1,
                '}' => {
                    self.depth -= 1;
                    if self.open.last().is_some_and(|(_, d)| *d == self.depth) {
                        self.open.pop();
                    }
                }
                _ => {}
            }
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The layer of a referenced path, or `None` for the crate root's own items.
fn target_layer(path: &[String]) -> Option<String> {
    let first = path.first()?;
    if let Some((_, layer)) = ROOT_MACROS.iter().find(|(m, _)| m == first) {
        return Some(layer.to_string());
    }
    layer_of(path)
}

fn violations() -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut bad = BTreeSet::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let here = module_of(rel);
        let Some(layer) = layer_of(&here) else {
            continue;
        };
        let allowed = ALLOWED
            .iter()
            .find(|(l, _)| *l == layer)
            .unwrap_or_else(|| panic!("{}: layer {layer} is not in the table", rel.display()))
            .1;
        let text = std::fs::read_to_string(&f).unwrap();
        let mut inline = InlineMods::default();
        for (n, line) in text.lines().enumerate() {
            let mut module = here.clone();
            module.extend(inline.names());
            inline.advance(line);
            for p in referenced(line, &module) {
                let Some(to) = target_layer(&p) else { continue };
                if to != layer && !allowed.contains(&to.as_str()) {
                    bad.insert(format!(
                        "src/{}:{}: {layer} uses {to} ({})",
                        rel.display(),
                        n + 1,
                        p.join("::")
                    ));
                }
            }
        }
    }
    bad.into_iter().collect()
}

#[test]
fn no_module_imports_one_above_it() {
    let bad = violations();
    assert!(
        bad.is_empty(),
        "imports against the layering:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_checker_sees_a_violation() {
    let here: Vec<String> = ["tensor", "cuda", "ops"].map(String::from).to_vec();
    let refs = referenced("use crate::train::optim::AdamW;", &here);
    assert_eq!(target_layer(&refs[0]).as_deref(), Some("train"));
    let refs = referenced("use super::super::tensor::Tensor;", &here);
    assert_eq!(target_layer(&refs[0]).as_deref(), Some("tensor"));
    let refs = referenced("use crate::{detail, info};", &here);
    assert_eq!(refs.len(), 2);
    assert_eq!(target_layer(&refs[0]).as_deref(), Some("cli"));
}
