"""fk's Blender script: import one uvfit output folder and save ``<folder>/<folder name>.blend``.

Run by ``fk uvfit blender DIR`` as ``blender --background --python blender_script.py -- ABS_DIR``.
It imports ``stage3_mesh_id.obj``, ``L_ball.obj`` and ``R_ball.obj``, shades them smooth, gives each
a material named after its texture (``stage3_uv``, ``eye_ball_tex``) whose Image Texture node feeds the
Principled BSDF's Base Color, and saves the .blend (textures are visible in Material Preview).
Works with Blender 3.2+ (``wm.obj_import``) and older (``import_scene.obj``).
"""

import os
import sys

import bpy  # noqa: I001  (only inside Blender)

MESHES = (
    ("stage3_mesh_id.obj", "stage3_uv.png"),
    ("L_ball.obj", "eye_ball_tex.png"),
    ("R_ball.obj", "eye_ball_tex.png"),
)


def _import_obj(path):
    before = set(bpy.data.objects)
    if hasattr(bpy.ops.wm, "obj_import"):
        bpy.ops.wm.obj_import(filepath=path)
    else:  # Blender < 3.2
        bpy.ops.import_scene.obj(filepath=path)
    return [o for o in bpy.data.objects if o not in before]


def _material(texture_path):
    name = os.path.splitext(os.path.basename(texture_path))[0]
    mat = bpy.data.materials.get(name) or bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = nodes.get("Principled BSDF") or nodes.new("ShaderNodeBsdfPrincipled")
    tex = next((n for n in nodes if n.type == "TEX_IMAGE"), None) or nodes.new("ShaderNodeTexImage")
    tex.location = (-400, 0)
    tex.image = bpy.data.images.load(texture_path, check_existing=True)
    links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def main(folder):
    folder = os.path.abspath(folder.rstrip("/\\") or folder)
    for obj in [o for o in bpy.data.objects if o.type == "MESH"]:
        bpy.data.objects.remove(obj, do_unlink=True)
    for obj_name, tex_name in MESHES:
        path = os.path.join(folder, obj_name)
        if not os.path.exists(path):
            raise SystemExit(f"fk: missing {path}")
        mat = _material(os.path.join(folder, tex_name))
        for obj in _import_obj(path):
            if obj.type != "MESH":
                continue
            for poly in obj.data.polygons:
                poly.use_smooth = True
            obj.data.materials.clear()
            obj.data.materials.append(mat)
    bpy.ops.object.select_all(action="DESELECT")
    out = os.path.join(folder, os.path.basename(folder) + ".blend")
    bpy.ops.wm.save_as_mainfile(filepath=out)
    print(f"fk: wrote {out}")


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    if len(argv) != 1:
        raise SystemExit("usage: blender --background --python blender_script.py -- OUTPUT_FOLDER")
    main(argv[0])
