#!/usr/bin/env python3
"""Copies the Docker build context of the repository into DEST: the files a `docker build .`
would send, i.e. the checkout's files (git ls-files, tracked and untracked-not-ignored) minus
what .dockerignore excludes, with Docker's matching rules (patterns are relative to the context
root, `*` and `?` stay within one path element, `**` spans any number, a matched directory
excludes all below it, `!` re-includes, the last matching pattern wins).

Usage: context.py REPO DEST      (DEST is synced: files no longer in the context are removed,
                                  unchanged files keep their mtime so rebuilds stay incremental)
"""
import os
import re
import shutil
import subprocess
import sys


def compile_pattern(pat):
    pat = pat.strip().strip("/")
    if pat.startswith("./"):
        pat = pat[2:]
    i, out = 0, ""
    while i < len(pat):
        c = pat[i]
        if pat.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pat.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            j = pat.find("]", i)
            if j < 0:
                out += re.escape(c)
            else:
                out += "[" + pat[i + 1:j].replace("\\", "\\\\") + "]"
                i = j
        elif c == "\\" and i + 1 < len(pat):
            i += 1
            out += re.escape(pat[i])
        else:
            out += re.escape(c)
        i += 1
    # A pattern matching a directory excludes everything below it.
    return re.compile("^" + out + "(?:/.*)?$")


def load_rules(repo):
    rules = []
    path = os.path.join(repo, ".dockerignore")
    if not os.path.exists(path):
        return rules
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        neg = line.startswith("!")
        rules.append((neg, compile_pattern(line[1:] if neg else line)))
    return rules


def excluded(rules, rel):
    out = False
    for neg, rx in rules:
        if rx.match(rel):
            out = not neg
    return out


def context_files(repo):
    files = subprocess.run(
        ["git", "-C", repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True, capture_output=True).stdout.decode().split("\0")
    rules = load_rules(repo)
    return sorted(f for f in files if f and os.path.lexists(os.path.join(repo, f))
                  and not excluded(rules, f))


def main():
    repo, dest = sys.argv[1], sys.argv[2]
    keep = context_files(repo)
    os.makedirs(dest, exist_ok=True)
    wanted = set(keep)
    for root, dirs, names in os.walk(dest, topdown=False):
        for n in names:
            rel = os.path.relpath(os.path.join(root, n), dest)
            if rel not in wanted:
                os.remove(os.path.join(root, n))
        for d in dirs:
            p = os.path.join(root, d)
            if not os.listdir(p):
                os.rmdir(p)
    for rel in keep:
        src, dst = os.path.join(repo, rel), os.path.join(dest, rel)
        st = os.lstat(src)
        try:
            d = os.lstat(dst)
            if d.st_size == st.st_size and int(d.st_mtime) == int(st.st_mtime) and d.st_mode == st.st_mode:
                continue
        except FileNotFoundError:
            pass
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.lexists(dst):
            os.remove(dst)
        shutil.copy2(src, dst, follow_symlinks=False)
    print(len(keep))


if __name__ == "__main__":
    main()
