"""Build backend of fk's first-party plugins: setuptools, with fk's own packages found by path.

fk's packages are installed from a checkout of this repository, never from a package index
(a name there could belong to anyone). A regular build (``pip install ./packages/plugin-deep3d``)
therefore rewrites each ``Requires-Dist`` on ``fk-core`` or ``fk-plugin-*`` into a direct
reference to the sibling folder (``fk-core @ file:///.../packages/core``), so one plugin installs
alone, in any order, and pip pulls the fk packages it needs from the same checkout. An editable
build (``pip install -e``, ``requirements.txt``) keeps the plain names: the editable siblings
installed with it provide them, and pip refuses an editable and a direct reference to one project.

Every plugin carries an identical copy (a build backend must sit inside its project);
tests/core/test_local_build.py checks they agree.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import zipfile
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 - every other hook unchanged

_HERE = Path(__file__).resolve().parent
_LOCAL = re.compile(r"^Requires-Dist: (fk-core|fk-plugin-[a-z0-9-]+)\b[^;\n]*(;.*)?$", re.M)


def _folder(dist: str) -> Path:
    return _HERE.parent / dist.removeprefix("fk-")


def _by_path(metadata: str) -> str:
    def repl(m: re.Match[str]) -> str:
        folder = _folder(m.group(1))
        if not folder.is_dir():  # not from a checkout: leave the requirement as it is
            return m.group(0)
        marker = f" ;{m.group(2)[1:]}" if m.group(2) else ""
        return f"Requires-Dist: {m.group(1)} @ {folder.as_uri()}{marker}"

    return _LOCAL.sub(repl, metadata)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    name = _setuptools.prepare_metadata_for_build_wheel(metadata_directory, config_settings)
    path = Path(metadata_directory) / name / "METADATA"
    path.write_text(_by_path(path.read_text(encoding="utf-8")), encoding="utf-8")
    return name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)
    wheel = Path(wheel_directory) / name
    tmp = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        members = {info.filename: src.read(info) for info in src.infolist()}
        meta = next(n for n in members if n.endswith(".dist-info/METADATA"))
        record = next(n for n in members if n.endswith(".dist-info/RECORD"))
        members[meta] = _by_path(members[meta].decode("utf-8")).encode("utf-8")
        digest = base64.urlsafe_b64encode(hashlib.sha256(members[meta]).digest()).rstrip(b"=").decode()
        lines = [f"{meta},sha256={digest},{len(members[meta])}" if line.startswith(f"{meta},") else line
                 for line in members[record].decode("utf-8").splitlines()]
        members[record] = ("\n".join(lines) + "\n").encode("utf-8")
        for info in src.infolist():
            dst.writestr(info, members[info.filename])
    os.replace(tmp, wheel)
    return name
