"""A minimal in-tree PEP 517 / PEP 660 build backend (standard library only).

The package is pure Python, so a wheel is just a zip of ``aipalq/`` plus
metadata. Building it here, with no build requirements, lets
``pip install bindings/python`` work offline and in build isolation, with
any Python >= 3.8 and without setuptools or wheel installed.

Metadata comes from the ``[project]`` table of pyproject.toml (read with
tomllib on Python 3.11+, else with a small parser of the simple
``key = "value"`` / ``key = [...]`` lines used there).
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parent
PACKAGE = "aipalq"


def _project() -> Dict[str, Any]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib  # Python 3.11+

        return tomllib.loads(text)["project"]
    except ImportError:
        pass
    m = re.search(r"^\[project\]\n(.*?)(?=^\[|\Z)", text, re.S | re.M)
    assert m, "pyproject.toml has no [project] table"
    out: Dict[str, Any] = {}
    for key, value in re.findall(r'^(\w[\w-]*)\s*=\s*(".*?"|\[.*?\]|\{.*?\})\s*$', m.group(1), re.S | re.M):
        if value.startswith('"'):
            out[key] = value[1:-1]
        elif value.startswith("["):
            out[key] = re.findall(r'"(.*?)"', value)
        else:
            out[key] = dict(re.findall(r'(\w+)\s*=\s*"(.*?)"', value))
    return out


def _dist_name(p: Dict[str, Any]) -> str:
    return f"{p['name'].replace('-', '_')}-{p['version']}"


def _metadata(p: Dict[str, Any]) -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {p['name']}",
        f"Version: {p['version']}",
        f"Summary: {p.get('description', '')}",
    ]
    lic = p.get("license")
    if isinstance(lic, dict) and lic.get("text"):
        lines.append(f"License: {lic['text']}")
    if p.get("requires-python"):
        lines.append(f"Requires-Python: {p['requires-python']}")
    for c in p.get("classifiers", []):
        lines.append(f"Classifier: {c}")
    for d in p.get("dependencies", []):
        lines.append(f"Requires-Dist: {d}")
    readme = ROOT / str(p.get("readme", "README.md"))
    body = ""
    if readme.exists():
        lines.append("Description-Content-Type: text/markdown")
        body = "\n" + readme.read_text(encoding="utf-8")
    return "\n".join(lines) + "\n" + body


def _package_files() -> List[Path]:
    files = []
    for f in sorted((ROOT / PACKAGE).rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts and f.suffix not in (".pyc", ".pyo"):
            files.append(f)
    return files


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _write_wheel(wheel_directory: str, entries: Dict[str, bytes], p: Dict[str, Any]) -> str:
    dist = _dist_name(p)
    info = f"{dist}.dist-info"
    entries = dict(entries)
    entries[f"{info}/METADATA"] = _metadata(p).encode("utf-8")
    entries[f"{info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: aipalq_build\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    ).encode()
    entries[f"{info}/top_level.txt"] = f"{PACKAGE}\n".encode()
    record = [_record_line(n, d) for n, d in entries.items()] + [f"{info}/RECORD,,"]
    entries[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    name = f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in entries.items():
            zi = zipfile.ZipInfo(n, date_time=(2024, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(zi, d)
    return name


# ---------------------------------------------------------------- PEP 517


def get_requires_for_build_wheel(config_settings: Optional[dict] = None) -> List[str]:
    return []


def get_requires_for_build_sdist(config_settings: Optional[dict] = None) -> List[str]:
    return []


def get_requires_for_build_editable(config_settings: Optional[dict] = None) -> List[str]:
    return []


def build_wheel(wheel_directory: str, config_settings: Optional[dict] = None,
                metadata_directory: Optional[str] = None) -> str:
    entries = {f.relative_to(ROOT).as_posix(): f.read_bytes() for f in _package_files()}
    return _write_wheel(wheel_directory, entries, _project())


def build_editable(wheel_directory: str, config_settings: Optional[dict] = None,
                   metadata_directory: Optional[str] = None) -> str:
    # PEP 660: a .pth file that puts this directory on sys.path.
    entries = {f"__editable__.{PACKAGE}.pth": (str(ROOT) + "\n").encode()}
    return _write_wheel(wheel_directory, entries, _project())


def build_sdist(sdist_directory: str, config_settings: Optional[dict] = None) -> str:
    p = _project()
    dist = _dist_name(p)
    name = f"{dist}.tar.gz"
    files = [ROOT / "pyproject.toml", ROOT / "README.md", Path(__file__).resolve()] + _package_files()
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for f in files:
            if f.exists():
                tar.add(str(f), arcname=f"{dist}/{f.relative_to(ROOT).as_posix()}")
        pkg_info = _metadata(p).encode("utf-8")
        ti = tarfile.TarInfo(f"{dist}/PKG-INFO")
        ti.size = len(pkg_info)
        ti.mode = 0o644
        tar.addfile(ti, io.BytesIO(pkg_info))
    return name
