#!/usr/bin/env bash
# Each fk plugin installs alone from the checkout, in dependency order and out of it, and works.
#
# Third-party dependencies (torch, dlib-bin, matplotlib...) are installed once into a base
# environment that holds no fk package; every scenario is a fresh venv that sees the base's
# site-packages through a .pth file, so only fk's own packages are resolved and installed
# there, by pip, from ./packages. A scenario fails if pip cannot find a local dependency
# (it never looks for fk packages on an index: they are required by path).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
work="${FK_CI_TMP:-.ci-venv-alone}"
rm -rf "$work" && mkdir -p "$work"
python3 -m venv "$work/base"
"$work/base/bin/python" -m pip install -q torch==2.13.0 ./packages/core ./packages/plugin-*
"$work/base/bin/python" -m pip uninstall -q -y fk-core $(cd packages && ls -d plugin-* | sed 's/^/fk-/')
base_site=$("$work/base/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")

fresh() {  # a new venv that sees the base's third-party packages, and no fk package
  rm -rf "$work/v" && python3 -m venv "$work/v"
  local site
  site=$("$work/v/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  echo "$base_site" > "$site/_ci_base.pth"
  if "$work/v/bin/python" -c "import fk" 2>/dev/null; then echo "fk leaked into the fresh venv"; exit 1; fi
}

check() {  # fk --help works, and every component of the given plugins imports
  "$work/v/bin/fk" --help >/dev/null
  "$work/v/bin/python" - "$@" <<'PY'
import sys
from fk.plugins import get_plugin_manager
pm = get_plugin_manager()
assert not pm.broken, [(b.name, b.error) for b in pm.broken]
names = {p.name for p in pm.plugins()}
for wanted in sys.argv[1:]:
    assert wanted in names, (wanted, sorted(names))
    comps = [c for c in pm.components.values() if c.plugin == wanted]
    for c in comps:
        c.load_factory()  # imports the implementation: every dependency is there
    print(f"  {wanted}: ok, {len(comps)} component(s) import", ", ".join(sorted({c.ref for c in comps})))
PY
}

for pkg in packages/plugin-*; do
  name=${pkg#packages/plugin-}
  echo "== $pkg alone, in a fresh venv"
  fresh
  "$work/v/bin/python" -m pip install -q "./$pkg"
  check "$name"
done

echo "== dependency order: core, align, deep3d, datasets"
fresh
for p in core plugin-align plugin-deep3d plugin-datasets; do "$work/v/bin/python" -m pip install -q "./packages/$p"; done
check align deep3d datasets

echo "== reverse order: datasets[pipeline], deep3d, align, core"
fresh
for p in "plugin-datasets[pipeline]" plugin-deep3d plugin-align core; do
  "$work/v/bin/python" -m pip install -q "./packages/$p"
done
check align deep3d datasets
rm -rf "$work"
echo "every plugin installs alone and in any order"
