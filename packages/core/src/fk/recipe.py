"""Recipes: plain YAML (``safe_load`` semantics) that compose components into a pipeline.

Schema version 1::

    fk: 1                                   # schema version (required)
    name: demo
    description: one line
    requires: ["fk-plugin-deep3d>=0.1"]     # PEP 508, checked like pytest's required_plugins
    params: {renderer: auto, device: cpu}   # recipe-wide options; --set renderer=cpu
    inputs:
      photos: {type: images, path: photos/} # iterated: one item per image (a file, folder, builtin:astronaut or builtin:astronaut_x2)
      labels: {type: file, path: ffhq/dataset.json, optional: true}
    steps:
      - id: detect
        use: detect:dlib                    # <stage>:<name>, see `fk components list`
        in: {image: inputs.photos}          # port: inputs.<name> | <step id>.<output port>
        with: {upsample: 1}                 # parameters, checked against the component's
        dir: landmarks                      # output folder under --out (default: the step id)

Everything is validated before any work, and every problem names file, line and
column. A recipe-wide param is also handed to every component that declares a
parameter of the same name and was not given one in ``with:`` (so ``--set
renderer=cpu`` reaches every renderer user).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fk.components import Component
from fk.errors import ExitCode, FkError, RecipeError, UsageError

SCHEMA_VERSION = 1
TOP_KEYS = ("fk", "name", "description", "requires", "params", "inputs", "steps")
STEP_KEYS = ("id", "use", "in", "with", "dir", "enabled")
INPUT_KEYS = ("type", "path", "value", "optional", "pattern", "help")
INPUT_TYPES = ("images", "files", "file", "dir", "value", "deep3d-folder")
# deep3d-folder: Deep3D's test.py layout, *.png/*.jpg with their 5 points in detections/{stem}.txt
ITERATED_TYPES = ("images", "files", "deep3d-folder")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")  # GIF: its first frame


# --------------------------------------------------------------------------- YAML with marks
# Hostile-input bounds: a recipe is a small hand-written file. These stop a "billion laughs"
# alias bomb, pathological nesting and huge files before they cost time or memory.
MAX_RECIPE_BYTES = 1 << 20  # 1 MiB
MAX_NESTING = 64  # mappings/sequences inside each other
MAX_NODES = 100_000  # values after aliases are expanded
_CORE_TAGS = frozenset(f"tag:yaml.org,2002:{t}"
                       for t in ("str", "int", "float", "bool", "null", "map", "seq"))


def _prescan(text: str, filename: str) -> None:
    """Walk the YAML event stream (iterative, no objects built): refuse unknown tags and deep nesting."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            tag = getattr(event, "tag", None)
            where = f"{filename}:{event.start_mark.line + 1}:{event.start_mark.column + 1}"
            if tag is not None and tag != "!" and tag not in _CORE_TAGS:
                raise RecipeError([f"{where}: YAML tag {tag!r} is not allowed in a recipe"],
                                  hint="Recipes are plain YAML: remove the tag (values are strings, numbers, "
                                       "booleans, lists and mappings).")
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_NESTING:
                    raise RecipeError([f"{where}: nested more than {MAX_NESTING} levels deep"],
                                      hint="A recipe needs a few levels; flatten this value.")
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return  # load_yaml_with_marks reports syntax errors with their position


class _Marks(dict):
    """(path tuple) -> (line, column), both 1-based."""


def load_yaml_with_marks(text: str, filename: str) -> tuple[Any, _Marks]:
    """Parse YAML with ``SafeLoader`` and remember where every key and value sits."""
    marks = _Marks()
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_RECIPE_BYTES:
        raise RecipeError([f"{filename}: {size} bytes is too large for a recipe (at most {MAX_RECIPE_BYTES} bytes)"],
                          hint="Recipes are short YAML files; put data in input files instead.")
    _prescan(text, filename)
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RecipeError([f"{where}: malformed YAML: {problem}"],
                          hint="Fix the YAML syntax at that line (indentation, a missing ':' or quote).") from None
    if node is None:
        return None, marks
    count = [0]

    def build(n: yaml.Node, path: tuple[Any, ...]) -> Any:
        count[0] += 1
        if count[0] > MAX_NODES:  # aliases share nodes: expanding them can be exponential
            raise RecipeError([f"{filename}:{n.start_mark.line + 1}:{n.start_mark.column + 1}: more than "
                               f"{MAX_NODES} values once YAML aliases are expanded (an alias bomb?)"],
                              hint="Use fewer aliases (&name / *name); a recipe needs a few hundred values.")
        marks[path] = (n.start_mark.line + 1, n.start_mark.column + 1)
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for k_node, v_node in n.value:
                key = _scalar(k_node)
                if key in out:
                    line, col = k_node.start_mark.line + 1, k_node.start_mark.column + 1
                    raise RecipeError([f"{filename}:{line}:{col}: duplicate key {key!r}"])
                marks[(*path, key, "__key__")] = (k_node.start_mark.line + 1, k_node.start_mark.column + 1)
                out[key] = build(v_node, (*path, key))
            return out
        if isinstance(n, yaml.SequenceNode):
            return [build(v, (*path, i)) for i, v in enumerate(n.value)]
        return _scalar(n)

    return build(node, ()), marks


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise RecipeError([f"line {node.start_mark.line + 1}: a mapping key must be a plain value"])
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node)
    finally:
        loader.dispose()


# --------------------------------------------------------------------------- plan
@dataclass
class InputSpec:
    name: str
    type: str
    path: Path | None = None
    value: Any = None
    optional: bool = False
    pattern: str | None = None

    def items(self) -> list[Path]:
        """The files an iterated input yields, sorted by name (never by listing order)."""
        if self.path is None:
            return []
        if self.path.is_dir():
            return sorted((p for p in self._entries() if self._why_skipped(p) is None), key=lambda p: p.name)
        return [self.path]

    def _entries(self) -> list[Path]:
        return [p for p in self.path.glob(self.pattern or "*") if not p.name.startswith(".")]

    def _why_skipped(self, p: Path) -> str | None:
        if p.is_dir():
            if self.type == "deep3d-folder" and p.name == "detections":
                return "detections"  # the 5-point files: read with their images, never an item
            return "a sub-folder: inputs are read from the folder's top level only; pass the sub-folder itself"
        if self.type == "images" and p.suffix.lower() not in IMAGE_SUFFIXES:
            return f"not an image fk reads (suffix {p.suffix or 'none'}; it reads {', '.join(IMAGE_SUFFIXES)})"
        if self.type == "deep3d-folder" and not p.name.endswith(("png", "jpg")):
            return "not a .png/.jpg (Deep3D's test.py reads only those)"
        return None

    def skipped(self) -> list[tuple[Path, str]]:
        """Entries of an iterated input folder that :meth:`items` leaves out, and why (hidden files
        are ignored silently). The engine reports each in ``failures.json``."""
        if self.path is None or not self.path.is_dir() or self.type not in ITERATED_TYPES:
            return []
        out = []
        for p in sorted(self._entries(), key=lambda p: p.name):
            why = self._why_skipped(p)
            if why is not None and why != "detections":
                out.append((p, why))
        return out


@dataclass
class StepPlan:
    id: str
    component: Component
    wiring: dict[str, str]  # port -> "inputs.x" | "step.port"
    params: dict[str, Any]
    dir: str

    @property
    def scope(self) -> str:
        return self.component.scope

    def upstream(self) -> set[str]:
        return {ref.split(".", 1)[0] for ref in self.wiring.values() if not ref.startswith("inputs.")}


@dataclass
class Plan:
    path: Path
    name: str
    description: str
    params: dict[str, Any]
    inputs: dict[str, InputSpec]
    steps: list[StepPlan]  # topological order
    overrides: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # from the components' preflight checks, said once

    @property
    def item_steps(self) -> list[StepPlan]:
        return [s for s in self.steps if s.scope == "item"]

    @property
    def run_steps(self) -> list[StepPlan]:
        return [s for s in self.steps if s.scope == "run"]

    @property
    def iterated_input(self) -> InputSpec | None:
        return next((i for i in self.inputs.values() if i.type in ITERATED_TYPES), None)

    def digest(self) -> str:
        """Changes whenever what a run would compute changes (components, versions, params)."""
        doc = {
            "params": self.params,
            "steps": [
                {"id": s.id, "use": s.component.ref, "dist": s.component.distribution,
                 "version": s.component.version, "in": s.wiring, "with": s.params, "dir": s.dir}
                for s in self.steps
            ],
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": str(self.path),
            "name": self.name,
            "description": self.description,
            "params": self.params,
            "overrides": self.overrides,
            "inputs": {k: {"type": v.type, "path": str(v.path) if v.path else None, "value": v.value}
                       for k, v in self.inputs.items()},
            "steps": [
                {"id": s.id, "use": s.component.ref, "plugin": s.component.distribution,
                 "version": s.component.version, "scope": s.scope, "in": s.wiring, "with": s.params,
                 "dir": s.dir}
                for s in self.steps
            ],
            "digest": self.digest(),
            "notices": self.notices,
        }


# --------------------------------------------------------------------------- builtin inputs
BUILTIN_INPUTS = {
    "astronaut": "scikit-image's astronaut photo (512², a real face, public domain)",
    "astronaut_x2": "the astronaut upscaled ×2 with Lanczos (1024²): LPFF rejects faces whose crop is under "
                    "512 px, so its recipe's default input is this, named for what it is",
    "deep3d_examples": "a Deep3D-style folder (test.py's layout): the astronaut and detections/astronaut.txt "
                       "with its 5 points (dlib's 68 reduced, measured once)",
}
# The astronaut's 5 points (eye centres, nose tip, mouth corners) from dlib's 68 landmarks.
_ASTRONAUT_FIVE = ((203.5, 102.5), (246.0, 105.5), (225.0, 127.0), (201.0, 139.0), (246.0, 141.0))


def resolve_builtin(path: str) -> Path | None:
    """The file behind ``builtin:<name>`` (see ``BUILTIN_INPUTS``), or None when it is not available.

    Derived images are made once, deterministically, under ``$FK_HOME/cache/builtin/``.
    """
    import importlib.util

    name = path.removeprefix("builtin:")
    if name not in BUILTIN_INPUTS:
        return None
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    astronaut = Path(next(iter(spec.submodule_search_locations))) / "data" / "astronaut.png"
    if name == "astronaut" or not astronaut.exists():
        return astronaut
    from fk import atomic
    from fk.assets import fk_home

    if name == "deep3d_examples":
        folder = fk_home() / "cache" / "builtin" / "deep3d_examples"
        if not (folder / "detections" / "astronaut.txt").exists():
            (folder / "detections").mkdir(parents=True, exist_ok=True)
            atomic.write_bytes(folder / "astronaut.png", astronaut.read_bytes())
            text = "".join(f"{x} {y}\n" for x, y in _ASTRONAUT_FIVE)
            atomic.write_bytes(folder / "detections" / "astronaut.txt", text.encode())
        return folder
    target = fk_home() / "cache" / "builtin" / f"{name}.png"
    if not target.exists():
        import io

        from PIL import Image

        with Image.open(astronaut) as im:
            big = im.convert("RGB").resize((im.width * 2, im.height * 2), Image.LANCZOS)
        buf = io.BytesIO()
        big.save(buf, format="PNG")
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_bytes(target, buf.getvalue())
    return target


# --------------------------------------------------------------------------- overrides
def parse_set(assignments: list[str]) -> list[tuple[list[str], Any]]:
    out = []
    for a in assignments:
        key, sep, raw = a.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set {a!r}: expected key=value", hint="e.g. --set renderer=cpu --set detect.upsample=2")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        out.append((key.strip().split("."), value))
    return out


def apply_overrides(doc: dict[str, Any], assignments: list[str]) -> None:
    step_ids = {s.get("id") for s in doc.get("steps") or [] if isinstance(s, dict)}
    for keys, value in parse_set(assignments):
        if keys[0] == "inputs" and len(keys) >= 2:
            inp = doc.setdefault("inputs", {}).setdefault(keys[1], {})
            field_name = keys[2] if len(keys) > 2 else "path"
            inp[field_name] = value
        elif keys[0] in step_ids and len(keys) >= 2:
            step = next(s for s in doc["steps"] if isinstance(s, dict) and s.get("id") == keys[0])
            target = step.setdefault("with", {})
            if keys[1] in ("with",) and len(keys) > 2:
                keys = keys[1:]
            for k in keys[1:-1]:
                target = target.setdefault(k, {})
            target[keys[-1]] = value
        else:
            if keys[0] == "params":
                keys = keys[1:]
            if not keys:
                raise UsageError("--set params=...: name a parameter, e.g. --set renderer=cpu")
            target = doc.setdefault("params", {})
            for k in keys[:-1]:
                target = target.setdefault(k, {})
            target[keys[-1]] = value


# --------------------------------------------------------------------------- validation
class _Problems:
    def __init__(self, filename: str, marks: _Marks):
        self.filename, self.marks, self.items = filename, marks, []
        self.missing = 0  # problems that are "not installed" rather than "written wrong"
        self.reported: set[tuple[str, str]] = set()

    def add(self, path: tuple[Any, ...], message: str, key: bool = False, missing: bool = False) -> None:
        self.missing += missing
        where = None
        if key:
            where = self.marks.get((*path, "__key__"))
        probe = path
        while where is None and probe:
            where = self.marks.get(probe)
            probe = probe[:-1]
        where = where or self.marks.get(())
        loc = f"{self.filename}:{where[0]}:{where[1]}" if where else self.filename
        label = _path_label(path)
        self.items.append(f"{loc}: {label + ': ' if label else ''}{message}")


def _path_label(path: tuple[Any, ...]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; expected one of: {', '.join(choices)}"


def load_recipe(path: str | os.PathLike[str], overrides: list[str] | None = None, pm: Any = None,
                check_assets: bool = True) -> Plan:
    """Read, override, and validate a recipe; return the executable :class:`Plan`.

    Raises :class:`RecipeError` listing every problem with file:line:column.
    """
    from fk.plugins import get_plugin_manager, unknown_component_message

    recipe_path = Path(path)
    filename = str(path)
    try:
        text = recipe_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError([f"{filename}: no such recipe file"],
                          hint="Check the path; bundled recipes are in recipes/ of the fk repository.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError([f"{filename}: cannot read recipe ({exc})"]) from None

    doc, marks = load_yaml_with_marks(text, filename)
    probs = _Problems(filename, marks)
    if not isinstance(doc, dict):
        raise RecipeError([f"{filename}:1:1: a recipe is a YAML mapping with keys {', '.join(TOP_KEYS)}"])
    overrides = list(overrides or [])
    apply_overrides(doc, overrides)
    pm = pm or get_plugin_manager()

    for key in doc:
        if key not in TOP_KEYS:
            probs.add((key,), f"unknown key{_did_you_mean(key, list(TOP_KEYS))}", key=True)
    if doc.get("fk") != SCHEMA_VERSION:
        probs.add(("fk",), f"schema version must be `fk: {SCHEMA_VERSION}` (got {doc.get('fk')!r})")

    _check_requires(doc.get("requires") or [], probs)

    params = doc.get("params") or {}
    if not isinstance(params, dict):
        probs.add(("params",), "must be a mapping of name: value")
        params = {}
    base_dir = recipe_path.resolve().parent

    inputs = _check_inputs(doc.get("inputs") or {}, probs, base_dir)

    steps_doc = doc.get("steps")
    if not isinstance(steps_doc, list) or not steps_doc:
        probs.add(("steps",), "a recipe needs a non-empty list of steps")
        steps_doc = []
    steps: dict[str, StepPlan] = {}
    step_paths: dict[str, tuple[Any, ...]] = {}
    unusable: set[str] = set()  # steps whose component is missing: no follow-up "no step" noise
    comps = pm.components
    for i, raw in enumerate(steps_doc):
        sp = ("steps", i)
        if not isinstance(raw, dict):
            probs.add(sp, "each step is a mapping with id, use, in, with")
            continue
        for key in raw:
            if key not in STEP_KEYS:
                probs.add((*sp, key), f"unknown step key{_did_you_mean(key, list(STEP_KEYS))}", key=True)
        sid = raw.get("id")
        if not isinstance(sid, str) or not sid or "." in sid:
            probs.add((*sp, "id"), "every step needs an id (a name without dots)")
            continue
        if sid in steps or sid == "inputs":
            probs.add((*sp, "id"), f"step id {sid!r} is used twice")
            continue
        if raw.get("enabled", True) is False:
            continue
        use = raw.get("use")
        if not isinstance(use, str):
            probs.add((*sp, "use"), "missing `use: <stage>:<name>`")
            continue
        if use not in comps:
            unusable.add(sid)  # later steps that read it are not reported again
            if use in getattr(pm, "conflicts", {}):
                err = pm.conflict_error(use)
                probs.add((*sp, "use"), f"{err} ({err.hint})", missing=True)
                continue
            msg, hint = unknown_component_message(use, comps)
            probs.add((*sp, "use"), f"{msg}; {hint}" if "not installed" in msg else f"{msg} ({hint})",
                      missing="not installed" in msg)
            continue
        comp = comps[use]
        wiring = raw.get("in") or {}
        with_ = raw.get("with") or {}
        if not isinstance(wiring, dict):
            probs.add((*sp, "in"), "must map input ports to inputs.<name> or <step>.<port>")
            wiring = {}
        if not isinstance(with_, dict):
            probs.add((*sp, "with"), "must be a mapping of parameter: value")
            with_ = {}
        resolved = _check_params(comp, with_, params, probs, (*sp, "with"))
        step_dir = raw.get("dir") or sid
        problem = output_dir_problem(step_dir)
        if problem:
            probs.add((*sp, "dir") if "dir" in raw else (*sp, "id"), problem)
            continue
        steps[sid] = StepPlan(sid, comp, {str(k): str(v) for k, v in wiring.items()}, resolved, str(step_dir))
        step_paths[sid] = sp

    # wiring: ports exist, references resolve, kinds agree
    for sid, step in steps.items():
        sp = step_paths[sid]
        in_ports = {p.name: p for p in step.component.inputs}
        for port, ref in step.wiring.items():
            if port not in in_ports:
                probs.add((*sp, "in", port), f"{step.component.ref} has no input {port!r}"
                          + _did_you_mean(port, list(in_ports) or ["(none)"]), key=True)
                continue
            src, _, out_port = ref.partition(".")
            if not out_port:
                probs.add((*sp, "in", port), f"{ref!r} is not a reference: use inputs.<name> or <step>.<port>")
            elif src == "inputs":
                if out_port not in inputs:
                    probs.add((*sp, "in", port), f"no recipe input {out_port!r}"
                              + _did_you_mean(out_port, list(inputs) or ["(none)"]))
            elif src in unusable:
                continue
            elif src not in steps:
                known = [s for s in steps if s != sid]
                probs.add((*sp, "in", port), f"no step {src!r}" + _did_you_mean(src, known or ["(none)"]))
            else:
                outs = {p.name: p for p in steps[src].component.outputs}
                if out_port not in outs:
                    probs.add((*sp, "in", port), f"step {src!r} ({steps[src].component.ref}) has no output "
                              f"{out_port!r}" + _did_you_mean(out_port, list(outs) or ["(none)"]))
                else:
                    want, have = in_ports[port].kind, outs[out_port].kind
                    if steps[src].component.fan_out == out_port:  # downstream sees one element
                        have = element_kind(have)
                    if "any" not in (want, have) and want != have:
                        probs.add((*sp, "in", port), f"{step.component.ref} expects {want!r} at {port!r}, "
                                  f"but {src}.{out_port} is {have!r}")
                    if step.scope == "item" and steps[src].scope == "run":
                        probs.add((*sp, "in", port), f"an item step cannot read {src}.{out_port}: "
                                  f"{src} runs once per run, after the items")
        for port, p in in_ports.items():
            if not p.optional and port not in step.wiring:
                probs.add((*sp, "in"), f"{step.component.ref} needs input {port!r} ({p.kind})")

    order = _toposort(steps, step_paths, probs)
    if any(s.scope == "item" for s in steps.values()) and not any(
            i.type in ITERATED_TYPES for i in inputs.values()):
        probs.add(("inputs",), "item steps need an input of type images or files to iterate over")

    if check_assets:
        from fk.assets import asset_status

        status = {a["name"]: a for a in asset_status(pm)}
        for sid, step in steps.items():
            for asset in step.component.requires_assets:
                st = status.get(asset)
                if st is None:
                    probs.add((*step_paths[sid], "use"), f"{step.component.ref} needs asset {asset!r}, "
                              "which no installed plugin declares", missing=True)
                elif not st["present"]:
                    probs.add((*step_paths[sid], "use"), f"{step.component.ref} needs {st['path']} "
                              f"({st['summary']}); {st['instructions']}", missing=True)

    _check_renderer(params, steps, step_paths, probs, pm)
    notices = _preflight(steps, step_paths, probs) if check_assets and not probs.items else []

    if probs.items:
        error = RecipeError(probs.items, hint=f"fk recipe validate {filename} checks a recipe without running it.")
        if probs.missing == len(probs.items):  # nothing is written wrong; something is not installed
            error.exit_code = ExitCode.MISSING
        raise error
    return Plan(recipe_path, str(doc.get("name") or recipe_path.stem), str(doc.get("description") or ""),
                params, inputs, [steps[s] for s in order], overrides, notices)


def _preflight(steps: dict[str, StepPlan], step_paths: dict[str, tuple[Any, ...]], probs: _Problems) -> list[str]:
    """Each component's own check of its resolved parameters, once, before any item runs."""
    notices: list[str] = []
    for sid, step in steps.items():
        check = step.component.load_preflight()
        if check is None:
            continue
        try:
            for note in check(dict(step.params)) or []:
                notices.append(f"{sid} ({step.component.ref}): {note}")
        except FkError as exc:
            text = str(exc) + (f"; {exc.hint}" if exc.hint else "")
            probs.add((*step_paths[sid], "use"), f"{step.component.ref}: {text}",
                      missing=exc.exit_code == ExitCode.MISSING)
    return notices


def output_dir_problem(step_dir: Any) -> str | None:
    """Why a step folder would not stay inside ``--out`` (absolute, ``~``, ``..``), or None if it does."""
    if not isinstance(step_dir, str):
        return f"dir must be a folder name relative to --out, got {type(step_dir).__name__} {step_dir!r}"
    if "\0" in step_dir or "\\" in step_dir:
        return f"dir {step_dir!r}: use '/' between folder names"
    if step_dir.startswith(("/", "~")) or (len(step_dir) > 1 and step_dir[1] == ":"):
        return f"dir {step_dir!r} is not relative: every output stays inside --out (use e.g. dir: pages)"
    if os.path.normpath(step_dir).split("/")[0] == "..":
        return f"dir {step_dir!r} leaves --out: every output stays inside --out (drop the '..')"
    return None


def _check_renderer(params: dict[str, Any], steps: dict[str, StepPlan], step_paths: dict[str, tuple[Any, ...]],
                    probs: _Problems, pm: Any) -> None:
    """A renderer named explicitly must exist and be usable here (``auto`` always is)."""
    wanted = [(("params", "renderer"), params.get("renderer"))]
    wanted += [((*step_paths[sid], "with", "renderer"), s.params.get("renderer")) for sid, s in steps.items()]
    backends = None
    for path, name in wanted:
        if name in (None, "auto"):
            continue
        if backends is None:
            backends = {b.name: b for b in pm.renderer_backends()}
        if name not in backends:
            probs.add(path, f"unknown renderer {name!r}" + _did_you_mean(str(name), ["auto", *backends]))
            continue
        ok, why = backends[name].probe()
        if not ok:
            probs.add(path, f"renderer {name!r} is not usable here: {why} (use renderer=auto or cpu)", missing=True)


def element_kind(kind: str) -> str:
    """The kind of one element of a fanned-out list port: ``faces`` -> ``face``."""
    return {"faces": "face", "crops": "crop", "images": "image", "recons": "recon"}.get(kind, kind)


def _check_requires(reqs: Any, probs: _Problems) -> None:
    import importlib_metadata
    from packaging.requirements import InvalidRequirement, Requirement

    if not isinstance(reqs, list):
        probs.add(("requires",), "must be a list of requirement strings like 'fk-plugin-deep3d>=0.1'")
        return
    for i, r in enumerate(reqs):
        try:
            req = Requirement(str(r))
        except InvalidRequirement as exc:
            probs.add(("requires", i), f"not a requirement string: {exc}")
            continue
        try:
            version = importlib_metadata.version(req.name)
        except importlib_metadata.PackageNotFoundError:
            probs.add(("requires", i), f"{req.name} is not installed ({requirement_install_hint(req)})",
                      missing=True)
            continue
        if req.specifier and not req.specifier.contains(version, prereleases=True):
            probs.add(("requires", i), f"{req.name} {version} is installed, the recipe needs {req}")


def requirement_install_hint(req: Any) -> str:
    """A command that works pasted into a shell: first-party plugins from the checkout, others quoted."""
    import shlex

    from fk.plugins import FIRST_PARTY, install_hint

    if req.name in FIRST_PARTY or req.name == "fk-core":
        return install_hint(req.name)
    return f"pip install {shlex.quote(str(req))}"


def _check_inputs(raw: Any, probs: _Problems, base_dir: Path) -> dict[str, InputSpec]:
    out: dict[str, InputSpec] = {}
    if not isinstance(raw, dict):
        probs.add(("inputs",), "must map input names to {type, path}")
        return out
    for name, spec in raw.items():
        ip = ("inputs", name)
        if isinstance(spec, str):  # shorthand: name: path/to/photos
            spec = {"type": "images", "path": spec}
        if not isinstance(spec, dict):
            probs.add(ip, "must be a mapping {type, path}")
            continue
        for key in spec:
            if key not in INPUT_KEYS:
                probs.add((*ip, key), f"unknown input key{_did_you_mean(key, list(INPUT_KEYS))}", key=True)
        typ = spec.get("type", "images")
        if typ not in INPUT_TYPES:
            probs.add((*ip, "type"), f"unknown input type {typ!r}{_did_you_mean(typ, list(INPUT_TYPES))}")
            continue
        optional = bool(spec.get("optional", False))
        path: Path | None = None
        if typ != "value":
            raw_path = spec.get("path")
            if raw_path in (None, ""):
                if not optional:
                    probs.add(ip, f"input {name!r} needs a path (or --set inputs.{name}=PATH)")
            else:
                raw_path = str(raw_path)
                if raw_path.startswith("builtin:"):
                    path = resolve_builtin(raw_path)
                    if raw_path.removeprefix("builtin:") not in BUILTIN_INPUTS:
                        probs.add((*ip, "path"), f"unknown {raw_path}; built-in inputs: "
                                  + ", ".join(f"builtin:{n}" for n in BUILTIN_INPUTS))
                        path = None
                    elif path is None or not path.exists():
                        probs.add((*ip, "path"), f"{raw_path} is not available (pip install scikit-image)")
                        path = None
                else:
                    path = Path(os.path.expanduser(raw_path))
                    if not path.is_absolute():
                        path = (base_dir / path) if (base_dir / path).exists() or not path.exists() else path
                    path = path.resolve()
                    if not path.exists() and not optional:
                        probs.add((*ip, "path"), f"{path} does not exist (set another with --set inputs.{name}=PATH)")
                    elif not path.exists():
                        path = None
                    elif typ == "file" and not path.is_file():
                        probs.add((*ip, "path"), f"{path} is not a file")
                    elif typ == "dir" and not path.is_dir():
                        probs.add((*ip, "path"), f"{path} is not a folder")
        spec_obj = InputSpec(name, typ, path, spec.get("value"), optional, spec.get("pattern"))
        if typ in ITERATED_TYPES and path is not None and path.exists() and not spec_obj.items():
            probs.add((*ip, "path"), f"{path} holds no {'files' if typ == 'files' else 'images'}")
        out[name] = spec_obj
    if sum(1 for i in out.values() if i.type in ITERATED_TYPES) > 1:
        probs.add(("inputs",), "only one input of type images/files/deep3d-folder may be iterated per recipe")
    return out


def _check_params(comp: Component, with_: dict[str, Any], params: dict[str, Any], probs: _Problems,
                  path: tuple[Any, ...]) -> dict[str, Any]:
    resolved = comp.defaults()
    names = [p.name for p in comp.params]
    for p in comp.params:  # recipe-wide params reach components that declare them
        if p.name in params and p.name not in with_:
            resolved[p.name] = params[p.name]
    for key, value in with_.items():
        param = comp.param(str(key))
        if param is None:
            probs.add((*path, key), f"{comp.ref} has no parameter {key!r}"
                      + _did_you_mean(str(key), names or ["(none)"]), key=True)
            continue
        resolved[param.name] = value
    for p in comp.params:
        problem = p.check(resolved.get(p.name))
        if problem:
            probs.add((*path, p.name), problem)
        elif p.required and resolved.get(p.name) is None:
            probs.add(path, f"{comp.ref} needs parameter {p.name!r}")
        else:
            unusable = unusable_here(p, resolved.get(p.name))
            if unusable and p.name not in with_ and p.name in params:  # recipe-wide: say it once
                if ("params", p.name) not in probs.reported:
                    probs.reported.add(("params", p.name))
                    probs.add(("params", p.name), f"{p.name}={resolved.get(p.name)!r}: {unusable}",
                              missing=True)
            elif unusable:
                probs.add((*path, p.name) if p.name in with_ else path,
                          f"{comp.ref} {p.name}={resolved.get(p.name)!r}: {unusable}", missing=True)
    return resolved


def unusable_here(param: Any, value: Any) -> str | None:
    """Why ``value`` cannot work on this machine (a missing file, CUDA without a GPU, a face model
    without its files), so the run stops before any item instead of failing every one."""
    if value in (None, ""):
        return None
    if param.type == "path":
        path = Path(os.path.expanduser(str(value)))
        if not path.exists():
            return f"{path.resolve()} does not exist ({param.help or 'a file this step reads'})"
    if param.role == "device" and isinstance(value, str) and value not in ("cpu", "auto"):
        return _device_problem(value)
    if param.role == "face-model" and isinstance(value, str) and value != "auto":
        from fk.models import available_models

        model = next((m for m in available_models() if m["name"] == value), None)
        if model is not None and not model["ready"]:
            first = model["missing_details"][0]
            how = f" (or build it: {first['convert']})" if first.get("convert") else ""
            return (f"face model {value!r} needs {first['path']}, which is missing: "
                    f"{first['instructions']}{how} (fk doctor lists every model file)")
    return None


def _device_problem(device: str) -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed (pip install torch==2.13.0)"
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        return f"{device!r} is not a torch device (use cpu, cuda or cuda:N)"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return f"torch {torch.__version__} sees no CUDA GPU here (use device=cpu)"
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            return f"there are {torch.cuda.device_count()} CUDA GPU(s) here, so {device!r} does not exist"
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        return "Apple MPS is not available here (use device=cpu)"
    return None


def _toposort(steps: dict[str, StepPlan], step_paths: dict[str, tuple[Any, ...]], probs: _Problems) -> list[str]:
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(sid: str, chain: list[str]) -> None:
        if state.get(sid) == 2:
            return
        if state.get(sid) == 1:
            cycle = " -> ".join([*chain[chain.index(sid):], sid])
            probs.add((*step_paths[sid], "in"), f"steps form a cycle: {cycle}")
            return
        state[sid] = 1
        for up in sorted(steps[sid].upstream()):
            if up in steps:
                visit(up, [*chain, sid])
        state[sid] = 2
        order.append(sid)

    for sid in steps:  # recipe order, moved only where wiring demands
        visit(sid, [])
    return order
