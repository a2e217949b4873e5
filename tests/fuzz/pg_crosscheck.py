#!/usr/bin/env python3
"""Cross-checks the library's JSON text check with PostgreSQL's jsonb.

For every file given (fuzz corpus entries: the text after the fuzz target's
control bytes, see --skip), asks the json_check tool for the library's verdict
and PostgreSQL (AIPALQ_DATABASE_URL, through psql) whether `text::jsonb`
works. Text the library accepts must be stored by PostgreSQL; text PostgreSQL
refuses must be refused by the library (the converse is allowed: the library
is stricter in places, e.g. nesting deeper than 1000). Exits 1 on a mismatch.

Usage: pg_crosscheck.py JSON_CHECK_BINARY [--skip N] FILE...
"""
import os
import subprocess
import sys
import tempfile


def main():
    args = sys.argv[1:]
    tool = args.pop(0)
    skip = 0
    if args and args[0] == "--skip":
        skip = int(args[1])
        args = args[2:]
    url = os.environ.get("AIPALQ_DATABASE_URL")
    if not url:
        print("pg_crosscheck: AIPALQ_DATABASE_URL is not set", file=sys.stderr)
        return 2
    bad = 0
    checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        for path in args:
            data = open(path, "rb").read()[skip:]
            data = data.split(b"\0", 1)[0]  # the library sees a C string
            text_path = os.path.join(tmp, "t")
            with open(text_path, "wb") as f:
                f.write(data)
            lib = subprocess.run([tool, text_path], capture_output=True, text=True, check=True)
            lib_ok = lib.stdout.split("\t", 1)[0] == "OK"
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                pg_ok = False
            else:
                # psql quotes the variable as a literal (:'t'); the cast is jsonb's parser.
                pg = subprocess.run(
                    ["psql", url, "-XqtA", "-v", "ON_ERROR_STOP=1", "-v", "t=" + data.decode()],
                    input="select length(:'t'::jsonb::text) >= 0;\n",
                    capture_output=True, text=True)
                pg_ok = pg.returncode == 0
            checked += 1
            if lib_ok and not pg_ok:
                bad += 1
                print(f"MISMATCH {path}: the library accepts what jsonb refuses")
    print(f"pg_crosscheck: {checked} inputs, {bad} mismatches")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
