#!/usr/bin/env python3
"""Build the Pulse app stand-in the way Vite lays out a build (no npm, standard library only).

    python3 lab/pulse-app/build.py [--out DIR] [--build-id ID]

writes DIR (default .lab/pulse-app/dist, git-ignored; $PULSE_LAB_DIR/pulse-app/dist when set):

    index.html                  references its assets by relative paths (assets/...)
    favicon.svg                 an unhashed file beside index.html
    assets/app.<hash>.js        content-hashed: the name changes whenever the content does
    assets/style.<hash>.css

<hash> is the first 8 hex digits of the file's SHA-256. --build-id is shown by the page and
written into app.js (another id, another app.js name: how tests make a second, different build).
The directory is replaced, so it holds exactly one build. Prints the files as JSON.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
HASHED = ("app.js", "style.css")  # assets/<stem>.<hash><suffix>
UNHASHED = ("favicon.svg",)  # copied beside index.html as they are


def content_hash(data):
    return hashlib.sha256(data).hexdigest()[:8]


def build(out, build_id=None):
    sources = {name: (SRC / name).read_bytes() for name in HASHED + UNHASHED + ("index.html",)}
    if build_id is None:
        build_id = content_hash(b"".join(sources[name] for name in sorted(sources)))
    sources["app.js"] = sources["app.js"].replace(b"__BUILD_ID__", build_id.encode())
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    (tmp / "assets").mkdir(parents=True)
    index = sources["index.html"].decode()
    files = {}
    for name in HASHED:
        stem, suffix = name.rsplit(".", 1)
        key = f"assets/{stem}.{content_hash(sources[name])}.{suffix}"
        (tmp / key).write_bytes(sources[name])
        index = index.replace(f"%{name}%", key)
        files[name] = key
    unknown = re.findall(r"%[\w.-]+%", index)
    if unknown:
        raise SystemExit(f"index.html names assets the build does not know: {unknown}")
    for name in UNHASHED:
        (tmp / name).write_bytes(sources[name])
        files[name] = name
    (tmp / "index.html").write_text(index)
    files["index.html"] = "index.html"
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return {"dist": str(out), "build_id": build_id, "files": files}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    lab_dir = Path(os.environ.get("PULSE_LAB_DIR", HERE.parent.parent / ".lab"))
    parser.add_argument("--out", type=Path, default=lab_dir / "pulse-app" / "dist", help="output directory (replaced)")
    parser.add_argument("--build-id", help="shown by the page (default: a hash of the sources)")
    args = parser.parse_args(argv)
    print(json.dumps(build(args.out.resolve(), args.build_id), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
