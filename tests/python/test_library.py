"""Finding and checking the shared library (each case in a fresh interpreter)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest
from pathlib import Path

import support

PROBE = textwrap.dedent(
    """
    import aipalq
    try:
        print("loaded", aipalq.library_path(), aipalq.library_version_string())
    except aipalq.LibraryError as e:
        print(type(e).__name__, isinstance(e, ImportError))
        print(e)
    """
)


def probe(env_changes: dict) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("AIPALQ_LIBRARY", "LD_LIBRARY_PATH")}
    env["PYTHONPATH"] = str(support.REPO / "bindings" / "python")
    for k, v in env_changes.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    # Keep a sanitizer runtime preloaded if the suite runs under one.
    if "LD_PRELOAD" in os.environ:
        env["LD_PRELOAD"] = os.environ["LD_PRELOAD"]
    r = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError(f"probe failed: {r.stdout}{r.stderr}")
    return r.stdout


class Loading(unittest.TestCase):
    def test_env_var_names_the_library(self):
        lib = str(support.build_dir() / "lib" / "libaipalq.so")
        out = probe({"AIPALQ_LIBRARY": lib})
        self.assertIn(f"loaded {lib} 1.", out)

    def test_env_var_that_does_not_load_is_an_error_not_a_fallback(self):
        out = probe({"AIPALQ_LIBRARY": "/nonexistent/libaipalq.so"})
        self.assertIn("LibraryNotFoundError True", out)
        self.assertIn("/nonexistent/libaipalq.so", out)
        self.assertIn("AIPALQ_LIBRARY", out)

    def test_build_tree_fallback(self):
        # Without AIPALQ_LIBRARY (and nothing installed) the source checkout's
        # build/lib is used.
        if not (support.REPO / "build" / "lib" / "libaipalq.so").exists():
            self.skipTest("no build/ in the checkout")
        out = probe({})
        self.assertIn("loaded", out)
        self.assertIn("libaipalq.so", out)

    def test_loader_search_path(self):
        d = str(support.build_dir() / "lib")
        out = probe({"LD_LIBRARY_PATH": d})
        self.assertIn("loaded libaipalq.so.1 1.", out)

    def test_version_mismatch(self):
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc:
            self.skipTest("no C compiler to build a fake library")
        with tempfile.TemporaryDirectory() as tmp:
            src = Path(tmp) / "fake.c"
            src.write_text("unsigned aipalq_version(void) { return 0x020305; }\n")
            so = Path(tmp) / "libaipalq.so"
            subprocess.run([cc, "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
            out = probe({"AIPALQ_LIBRARY": str(so)})
        self.assertIn("LibraryVersionError True", out)
        self.assertIn("2.3.5", out)
        self.assertIn("1.x", out)


if __name__ == "__main__":
    unittest.main()
