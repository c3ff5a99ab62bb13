#!/usr/bin/env python3
"""Side-by-side comparison of pretrain's cleaning rules with datatrove's (PyPI `datatrove`).

Same input, same rule sets, one core each:
  Gopher repetition -> Gopher quality -> C4 -> FineWeb  (datatrove defaults = our constants),
  plus MinHash signatures (5-gram shingles, 14 bands x 8 rows).
Reports MB/s per core for both, the speed ratio, and how often the keep/remove decisions agree.

Words: datatrove's English word splitter is NLTK's, whose model (punkt) is not on PyPI, so both
sides get the same whitespace splitter and the same sentence rule (pretrain's `text::words` and
`text::count_sentences`): the comparison is of the rules, not of tokenizers.

Each step is timed as the best of REPS (5) runs on each side. MinHash "end to end" is file to
file on both sides: datatrove's stages 1-3 (LocalPipelineExecutor, reading the JSONL input,
writing signatures, buckets and the removal list) against ours reading and parsing the same
JSONL, signatures + LSH + union-find, and writing one decision per document.

Setup (once):  benches/compare/venv.sh datatrove
Run:           benches/compare/.venv/bin/python benches/compare/clean_datatrove.py
Fixture:       ... clean_datatrove.py --write-fixture tests/fixtures/clean/datatrove_verdicts.jsonl
               (datatrove's verdicts on 100 real and 17 synthetic documents, checked by
               `cargo test clean_datatrove::` without Python)
"""
import glob, json, os, subprocess, sys, tempfile, time

from datatrove.data import Document
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter,
                                        GopherQualityFilter, GopherRepetitionFilter)
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature
from datatrove.utils.word_tokenizers import WordTokenizer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
os.environ.pop("PRETRAIN_QUICK", None)  # our side runs at full size, whatever the caller's shell has
CHUNK_LINES = 60  # documents are cut from the books in pieces of this many lines (~2-4 KB)


class Whitespace(WordTokenizer):
    """Words = str.split(); sentences end at .!? (+ closing quotes) before whitespace."""

    def __init__(self):
        super().__init__("en")

    def word_tokenize(self, text):
        return text.split()

    def sent_tokenize(self, text):
        return [text[a:b] for a, b in self.span_tokenize(text)]

    def span_tokenize(self, text):
        spans, start, i, n = [], 0, 0, len(text)
        while i < n:
            if text[i] in ".!?":
                j = i + 1
                while j < n and text[j] in ".!?":
                    j += 1
                while j < n and text[j] in "\"')]":
                    j += 1
                if j == n or text[j] in " \t\n\r\x0b\x0c":
                    if text[start:j].strip():
                        spans.append((start, j))
                    start = j
                i = j
            else:
                i += 1
        if text[start:].strip():
            spans.append((start, n))
        return spans


def build_input(path):
    """English books from data/raw/en, cut into documents, whitespace-normalized like `clean`."""
    docs = []
    for f in sorted(glob.glob(os.path.join(ROOT, "data/raw/en/**/*.txt"), recursive=True)):
        lines = [" ".join(l.split()) for l in open(f, encoding="utf-8", errors="replace").read().splitlines()]
        for k in range(0, len(lines), CHUNK_LINES):
            text, blank = [], False
            for l in lines[k:k + CHUNK_LINES]:
                if l or not blank:
                    text.append(l)
                blank = not l
            t = "\n".join(text).strip()
            if t:
                docs.append(t)
    # Planted near-duplicates: every 25th piece again with two words changed.
    planted = []
    for t in docs[::25]:
        w = t.split(" ")
        if len(w) >= 100:
            w[len(w) // 3] = "zzzz"
            w[2 * len(w) // 3] = "qqqq"
            planted.append(" ".join(w))
    docs += planted
    with open(path, "w", encoding="utf-8") as out:
        for i, t in enumerate(docs):
            out.write(json.dumps({"id": str(i), "text": t}, ensure_ascii=False) + "\n")
    return docs


def datatrove_dedup(inp, tmp, tok):
    """datatrove's MinHash stages 1-3 (signatures, buckets, clusters) on one core; returns the
    indices of the documents it removes."""
    import struct
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.dedup.minhash import MinhashDedupBuckets, MinhashDedupCluster
    cfg = MinhashConfig()
    d = lambda name: os.path.join(tmp, name)
    os.makedirs(d("in"), exist_ok=True)
    os.replace(inp, d("in/input.jsonl"))
    steps = [
        ([JsonlReader(d("in")), MinhashDedupSignature(d("sigs"), config=cfg, language=tok)], 1),
        ([MinhashDedupBuckets(d("sigs"), d("buckets"), config=cfg)], cfg.num_buckets),
        ([MinhashDedupCluster(d("buckets"), d("remove"), config=cfg)], 1),
    ]
    for i, (pipeline, tasks) in enumerate(steps):
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1,
                              logging_dir=d(f"logs{i}")).run()
    os.replace(d("in/input.jsonl"), inp)
    raw = open(d("remove/000000.remove"), "rb").read() if os.path.exists(d("remove/000000.remove")) else b""
    return set(struct.unpack(f"<{len(raw) // 4}I", raw))


REPS = int(os.environ.get("REPS", "5"))  # each step, each side: the best of this many runs


def best_of(f, n=REPS):
    best, out = float("inf"), None
    for _ in range(n):
        t = time.perf_counter()
        out = f()
        best = min(best, time.perf_counter() - t)
    return best, out


def main():
    tmp = tempfile.mkdtemp()
    inp, rust_dec = os.path.join(tmp, "input.jsonl"), os.path.join(tmp, "rust.txt")
    docs = build_input(inp)
    mb = sum(len(d.encode()) for d in docs) / 1e6
    subprocess.run(["cargo", "build", "--release", "--bench", "clean", "-q"], cwd=ROOT, check=True)
    # Our side: best of REPS runs of each step, in one process (PRETRAIN_QUICK is unset above).
    out = subprocess.run(["cargo", "bench", "-q", "--bench", "clean", "--", "--compare", inp, rust_dec, str(REPS)],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    rust = json.loads(out.strip().splitlines()[-1])
    rust_verdicts = open(rust_dec).read().split("\n")[:len(docs)]

    tok = Whitespace()
    rules = [GopherRepetitionFilter(language=tok), GopherQualityFilter(language=tok),
             C4QualityFilter(language=tok), FineWebQualityFilter(language=tok)]

    def run_rules():
        verdicts = []
        for i, t in enumerate(docs):
            doc = Document(text=t, id=str(i))
            verdict = "keep"
            for r in rules:
                res = r.filter(doc)
                ok, reason = (res, None) if isinstance(res, bool) else res
                if not ok:
                    verdict = f"{r.name}:{reason}"
                    break
            verdicts.append(verdict)
        return verdicts

    t_rules, dt_verdicts = best_of(run_rules)
    sig = MinhashDedupSignature(os.path.join(tmp, "sigs"), config=MinhashConfig(), language=tok)
    def signatures():
        out = []
        for t in docs:
            sh = sig.get_shingles(t)
            if len(sh):  # datatrove's pipeline skips documents with fewer than 5 words too
                out.append(sig.get_signature(sh))
        return out

    t_mh, _ = best_of(signatures)

    from loguru import logger
    logger.remove()
    # Stages 1-3 from the input file to the removal list, as ours runs from file to file; a fresh
    # folder for each run.
    runs = iter(range(REPS))
    t_dt_dedup, dt_removed = best_of(lambda: datatrove_dedup(inp, os.path.join(tmp, f"dedup{next(runs)}"), tok))
    rust_dups = open(rust_dec + ".dedup").read().split("\n")[:len(docs)]
    rust_removed = {i for i, v in enumerate(rust_dups) if v == "dup"}

    agree = sum((a == "keep") == (b == "keep") for a, b in zip(rust_verdicts, dt_verdicts))
    removed_rust = sum(v != "keep" for v in rust_verdicts)
    removed_dt = sum(v != "keep" for v in dt_verdicts)
    dt_rules, dt_mh = mb / t_rules, mb / t_mh
    print(f"best of {REPS} runs of each step on each side; load average {os.getloadavg()[0]:.2f}")
    print(f"input: {len(docs)} documents, {mb:.2f} MB (English books from data/raw/en, {CHUNK_LINES}-line pieces,"
          f" plus every 25th piece again with two words changed)")
    print("| step (one core) | pretrain MB/s | datatrove MB/s | ratio |")
    print("|---|---:|---:|---:|")
    print(f"| Gopher rep + Gopher quality + C4 + FineWeb | {rust['rules_mb_s']:.1f} | {dt_rules:.2f} | {rust['rules_mb_s'] / dt_rules:.0f}x |")
    print(f"| MinHash signatures (5-grams, 14x8) | {rust['minhash_mb_s']:.1f} | {dt_mh:.2f} | {rust['minhash_mb_s'] / dt_mh:.0f}x |")
    print(f"| MinHash near-dedup end to end, file to file (signatures, buckets, clusters) | {rust['dedup_mb_s']:.1f} | {mb / t_dt_dedup:.2f} | {rust['dedup_mb_s'] * t_dt_dedup / mb:.0f}x |")
    both = len(rust_removed & dt_removed)
    print(f"near-dedup: pretrain removes {len(rust_removed)}, datatrove removes {len(dt_removed)}, "
          f"both {both}; decisions agree on {len(docs) - len(rust_removed ^ dt_removed)}/{len(docs)}")
    print(f"decisions: pretrain removes {removed_rust}, datatrove removes {removed_dt}; "
          f"keep/remove agree on {agree}/{len(docs)} ({100 * agree / len(docs):.2f}%)")
    for i, (a, b) in enumerate(zip(rust_verdicts, dt_verdicts)):
        if (a == "keep") != (b == "keep"):
            print(f"  differs: doc {i}: pretrain {a}, datatrove {b}: {docs[i][:80]!r}")


def synthetic():
    """Small documents that trip each rule, for the fixture (real text alone trips only a few)."""
    good = ("The river carries sediment to the sea, and the delta grows where the water slows. "
            "Farmers have lived on the delta for thousands of years, and they have learned to read its floods. "
            "Each spring the water rises over the fields and leaves a layer of fresh silt behind. "
            "The town council meets in the old hall to decide when the gates should be opened. "
            "Children learn to swim in the canals before they can read.")
    docs = [good, good.replace(". ", ".\n")]
    docs.append(good + "\nWe use cookies to improve your experience on this site.\nEnable JavaScript to view the map below.")
    docs.append(good + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit.")
    docs.append(good + "\nThe config is written as {\"gates\": 4} in the file.")
    docs.append(good + " The first record[1] was kept in the hall[edit] for years[citation needed].")
    docs.append("Too short. Only a few words here.")
    docs.append("\n".join(f"- item number {i} in the list of things to buy" for i in range(60)))
    docs.append("\n".join(f"the story went on and on for {i} days..." for i in range(40)))
    docs.append(good + " " + " ".join(f"#tag{i}" for i in range(30)))
    docs.append(good + "\n" + "\n".join(["Home", "About", "Contact", "Shop", "Blog"] * 6))
    docs.append(("buy cheap watches now and save " * 40).strip())
    docs.append(good + " " + "x" * 1200 + " end of line.")
    docs.append("\n\n".join([good] * 3))
    docs.append(good + "\n" + "\n".join(f"Short line {i}." for i in range(40)))
    docs.append(" ".join(["1234", "5678", "the", "and", "9999"] * 30))
    docs.append(good.upper())
    docs.append(good + "\n" + good.split(". ")[0] + ".\n" + good.split(". ")[0] + ".")
    return docs


def write_fixture(path, docs, n_real=100):
    """Every k-th real document plus the synthetic ones, with datatrove's verdict and, for kept
    documents, the text after C4's line rules. `tests/suite/clean_datatrove.rs` checks ours against it."""
    tok = Whitespace()
    rules = [GopherRepetitionFilter(language=tok), GopherQualityFilter(language=tok),
             C4QualityFilter(language=tok), FineWebQualityFilter(language=tok)]
    step = max(1, len(docs) // n_real)
    picked = [d for d in docs[::step] if len(d) < 4000][:n_real] + synthetic()
    with open(path, "w", encoding="utf-8") as out:
        for t in picked:
            doc = Document(text=t, id="x")
            verdict = "keep"
            for r in rules:
                res = r.filter(doc)
                ok, reason = (res, None) if isinstance(res, bool) else res
                if not ok:
                    verdict = f"{r.name}:{reason}"
                    break
            rec = {"text": t, "datatrove": verdict}
            if verdict == "keep":
                rec["kept_text"] = doc.text
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"wrote {path}: {len(picked)} documents")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write-fixture":
        tmp = tempfile.mkdtemp()
        write_fixture(sys.argv[2], build_input(os.path.join(tmp, "input.jsonl")))
    else:
        main()
