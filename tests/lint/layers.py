#!/usr/bin/env python3
"""The layering rule, checked: a folder under src/ and include/modtrain/ includes only folders
below it. The order is written here once (docs/architecture.md draws it, and this check fails
when the drawing lists the folders in another order).

Also: no public header includes MPI, NCCL or CUDA headers except the ones named in
RAW_HEADERS_ALLOWED (the trainer and everything above it stay free of <mpi.h>).

Usage: layers.py REPO            check the repository; prints what it compared
       layers.py --self-test     a tree with one violation of each kind must fail
"""
import os
import re
import shutil
import sys
import tempfile

# Top to bottom: a folder may include itself and any folder after it.
ORDER = ["tools", "serve", "train", "infer", "modelio", "dist", "model", "data", "config", "io", "core"]
RAW_HEADERS = ("mpi.h", "nccl.h", "cuda_runtime.h")
RAW_HEADERS_ALLOWED = {"include/modtrain/dist/world_mpi.h"}
INCLUDE = re.compile(r'^\s*#\s*include\s+([<"])([^>"]+)[>"]', re.M)


def check(repo):
    errors, compared = [], 0
    rank = {name: i for i, name in enumerate(ORDER)}
    for root in ("src", "include/modtrain"):
        base = os.path.join(repo, root)
        for dirpath, _, files in os.walk(base):
            for f in sorted(files):
                if not f.endswith((".h", ".cpp")):
                    continue
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, repo)
                parts = os.path.relpath(path, base).split(os.sep)
                if len(parts) < 2:
                    continue  # src/main-level files, if any, are not in a folder
                area = parts[0]
                if area not in rank:
                    errors.append(f"{rel}: folder {area}/ is not in the layer order; add it to ORDER in {__file__}")
                    continue
                text = open(path, encoding="utf-8").read()
                for lineno, m in ((text.count("\n", 0, m.start()) + 1, m) for m in INCLUDE.finditer(text)):
                    kind, target = m.group(1), m.group(2)
                    if kind == "<" and target in RAW_HEADERS and root == "include/modtrain" and rel not in RAW_HEADERS_ALLOWED:
                        errors.append(f"{rel}:{lineno}: a public header includes <{target}>; keep it in src/ "
                                      f"(or in one of {sorted(RAW_HEADERS_ALLOWED)})")
                    if kind != '"' or not target.startswith("modtrain/"):
                        continue
                    other = target.split("/")[1]
                    compared += 1
                    if other not in rank:
                        errors.append(f"{rel}:{lineno}: includes {target}, whose folder is not in the layer order")
                    elif rank[other] < rank[area]:
                        errors.append(f"{rel}:{lineno}: {area}/ includes {target}, a folder above it "
                                      f"(order: {' > '.join(ORDER)}); move the code down or depend the other way")
    # The drawing (the first fenced block) in docs/architecture.md lists the folders in the same order.
    doc = os.path.join(repo, "docs", "architecture.md")
    if os.path.exists(doc):
        text = open(doc, encoding="utf-8").read()
        drawing = text.split("```")[1] if text.count("```") >= 2 else ""  # the first fenced block
        drawn = [m.group(1) for m in re.finditer(r"^(\w+)/\s", drawing, re.M)]
        drawn = [d for d in drawn if d in rank]
        if drawn != ORDER:
            errors.append(f"docs/architecture.md draws the folders as {drawn}; the layer order is {ORDER}")
        compared += 1
    return errors, compared


def self_test():
    tmp = tempfile.mkdtemp(prefix="layers-")
    try:
        def write(rel, text):
            p = os.path.join(tmp, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            open(p, "w").write(text)
        write("src/core/ok.cpp", '#include "modtrain/core/error.h"\n')
        write("src/data/ok.cpp", '#include "modtrain/io/files.h"\n#include "modtrain/config/config.h"\n')
        errors, compared = check(tmp)
        assert not errors and compared == 3, (errors, compared)
        write("src/infer/bad.cpp", '#include "modtrain/train/evaluator.h"\n')
        write("include/modtrain/train/bad.h", "#include <mpi.h>\n")
        errors, compared = check(tmp)
        assert len(errors) == 2, errors
        assert "infer/ includes modtrain/train/evaluator.h" in errors[0] + errors[1], errors
        assert "<mpi.h>" in errors[0] + errors[1], errors
        print("layers self-test ok: a clean tree passes, an upward include and a public <mpi.h> fail")
    finally:
        shutil.rmtree(tmp)


def main():
    if sys.argv[1:] == ["--self-test"]:
        self_test()
        return 0
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-2], file=sys.stderr)
        return 2
    errors, compared = check(sys.argv[1])
    for e in errors:
        print(e, file=sys.stderr)
    print(f"layers: {compared} modtrain includes checked against {' > '.join(ORDER)}; {len(errors)} violations")
    if compared < 100:
        print("layers: fewer than 100 includes compared: is REPO the repository root?", file=sys.stderr)
        return 1
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
