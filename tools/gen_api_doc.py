#!/usr/bin/env python3
"""Generates docs/API.md, the C API reference, from the public headers.

Each declaration is printed with the comment above it; section banners
(/* ---- name */) become headings. Run: tools/gen_api_doc.py > docs/API.md.
tests/check_api_doc.sh fails when the committed file is out of date."""
import pathlib
import re
import sys

HEADERS = ["aipalq.h", "worker.h", "status.h", "version.h"]
ROOT = pathlib.Path(__file__).resolve().parent.parent / "include" / "aipal"


def blocks(text):
    """Yields (comment, declaration) pairs and ('#', heading) banners."""
    lines = text.splitlines()
    i, comment = 0, []
    while i < len(lines):
        line = lines[i].rstrip()
        banner = re.match(r"/\* -+ ([^*]+?) \*/", line.strip())
        if banner:
            yield "#", banner.group(1).strip()
            comment = []
            i += 1
            continue
        if line.strip().startswith("/*"):
            comment = []
            while True:
                comment.append(lines[i].strip())
                if "*/" in lines[i]:
                    break
                i += 1
            i += 1
            continue
        if re.match(r"#define AIPALQ_[A-Z_]+ ", line) and not line.startswith("#define AIPALQ__"):
            decl = [line]
            while decl[-1].endswith("\\") and i + 1 < len(lines):
                i += 1
                decl.append(lines[i].rstrip())
            yield clean(comment), "\n".join(decl)
            comment = []
        elif line.startswith("AIPALQ_API") or line.startswith("typedef"):
            decl = [line]
            while not decl[-1].rstrip().endswith(";") and i + 1 < len(lines):
                i += 1
                decl.append(lines[i].rstrip())
                if decl[-1].strip().startswith("}") and decl[-1].rstrip().endswith(";"):
                    break
            yield clean(comment), "\n".join(decl).replace("AIPALQ_API ", "")
            comment = []
        elif line.strip():
            comment = []
        i += 1


def clean(comment):
    out = []
    for c in comment:
        c = c.strip()
        c = re.sub(r"^/\*+ ?", "", c)
        c = re.sub(r"\*/$", "", c)
        c = re.sub(r"^\* ?", "", c)
        out.append(c.rstrip())
    return "\n".join(out).strip()


def main():
    print("# libaipalq C API reference\n")
    print("Generated from `include/aipal/*.h` by `tools/gen_api_doc.py`; the headers")
    print("are the source of truth. Conventions (threads, errors, memory) are stated")
    print("once at the top of `aipalq.h` and `worker.h` and repeated below.\n")
    for name in HEADERS:
        text = (ROOT / name).read_text()
        print(f"## `<aipal/{name}>`\n")
        head = re.match(r"/\*(.*?)\*/", text, re.S)
        if head:
            print(clean(head.group(0).splitlines()) + "\n")
        for kind, body in blocks(text[head.end() if head else 0:]):
            if kind == "#":
                print(f"### {body}\n")
            else:
                print("```c\n" + body + "\n```\n")
                if kind:
                    print(kind + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
