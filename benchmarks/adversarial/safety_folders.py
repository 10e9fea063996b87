"""The out-folder cases of the second output pass (`safety`): --out, --alpha and --object-masks folders.

User files of many names in them, with and without --overwrite; our outputs edited, replaced by links
or hard links; manifests tampered with (wrong or missing hashes, paths outside the folder with the
right hash, garbage, a folder or a link in the manifest's place); reruns with fewer or more frames.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from seggpt.outputs import MANIFEST

from .safety import case, sha


# --------------------------------------------------------------------------- (1) out folders


@case("out-folder")
def user_png_in_out(c):
    c.user(c.p("out", "00000.png"), b"not ours")
    return dict(tool="vos", args=c.vos_args())


@case("out-folder")
def user_png_in_out_overwrite(c):
    c.user(c.p("out", "00001.png"), b"not ours")
    return dict(tool="vos", args=c.vos_args("--overwrite"))


@case("out-folder")
def rerun_unchanged_ok(c):
    c.prior("vos", c.vos_args())
    return dict(tool="vos", args=c.vos_args(), expect="ok")


@case("out-folder")
def rerun_unchanged_with_alpha_ok(c):
    c.prior("vos", c.vos_args("--alpha", c.p("alpha"), "--report", c.p("r.json")))
    return dict(tool="vos", args=c.vos_args("--alpha", c.p("alpha"), "--report", c.p("r.json")), expect="ok")


@case("out-folder")
def edited_output_refused(c):
    c.prior("vos", c.vos_args())
    c.user(c.p("out", "00000.png"), b"edited by user")
    return dict(tool="vos", args=c.vos_args())


@case("out-folder")
def edited_output_refused_overwrite(c):
    c.prior("vos", c.vos_args())
    c.user(c.p("out", "00001.png"), b"edited by user")
    return dict(tool="vos", args=c.vos_args("--overwrite"))


@case("out-folder")
def user_file_slipped_into_manifest(c):
    c.prior("vos", c.vos_args())
    c.user(c.p("out", "00005.png"), b"user file")
    m = c.read_manifest(c.p("out"))
    m["files"]["00005.png"] = {"size": 9, "sha256": "0" * 64}
    c.write_manifest(c.p("out"), m)
    return dict(tool="vos", args=c.vos_args("--end", "6", "--overwrite"))


@case("out-folder")
def user_non_png_in_out(c):
    c.user(c.p("out", "notes.txt"), b"keep me")
    return dict(tool="vos", args=c.vos_args(), expect="either")


@case("out-folder")
def slipped_name_without_hash(c):
    c.prior("vos", c.vos_args())
    c.user(c.p("out", "00002.png"), b"user file")
    m = c.read_manifest(c.p("out"))
    m["files"]["00002.png"] = {}
    c.write_manifest(c.p("out"), m)
    return dict(tool="vos", args=c.vos_args("--end", "3", "--overwrite"))


@case("out-folder")
def garbage_manifest(c):
    c.user(c.p("out", "00000.png"), b"user")
    c.user(c.p("out", MANIFEST), b"{not json")
    return dict(tool="vos", args=c.vos_args("--overwrite"))


@case("out-folder")
def unknown_format_manifest(c):
    c.prior("vos", c.vos_args())
    c.user(c.p("out", "00000.png"), b"user")
    m = c.read_manifest(c.p("out"))
    m["format"] = "something-else/9"
    m["files"]["00000.png"] = {"size": 4, "sha256": sha(b"user")}
    c.write_manifest(c.p("out"), m)
    return dict(tool="vos", args=c.vos_args("--overwrite"))


@case("out-folder")
def manifest_dotdot_path(c):
    c.prior("vos", c.vos_args())
    c.user(c.p("victim.png"), b"user")
    m = c.read_manifest(c.p("out"))
    m["files"]["../victim.png"] = {"size": 4, "sha256": sha(b"user")}
    c.write_manifest(c.p("out"), m)
    return dict(tool="vos", args=c.vos_args("--overwrite"), expect="either")


@case("out-folder")
def manifest_abs_path(c):
    c.prior("vos", c.vos_args())
    v = c.user(c.p("victim.png"), b"user")
    m = c.read_manifest(c.p("out"))
    m["files"][v] = {"size": 4, "sha256": sha(b"user")}
    c.write_manifest(c.p("out"), m)
    return dict(tool="vos", args=c.vos_args("--overwrite"), expect="either")


@case("out-folder")
def symlink_png_in_out(c):
    t = c.user(c.p("ext", "target.png"), b"target")
    c.link(c.p("out", "00000.png"), t)
    return dict(tool="vos", args=c.vos_args("--overwrite"))


@case("out-folder")
def symlink_ours_replaced_by_link(c):
    c.prior("vos", c.vos_args())
    t = c.user(c.p("ext", "target.png"), Path(c.p("out", "00000.png")).read_bytes())
    c.link(c.p("out", "00000.png"), t)
    return dict(tool="vos", args=c.vos_args("--overwrite"))


@case("out-folder")
def out_is_symlink_to_dir(c):
    c.user(c.p("ext", "00000.png"), b"user")
    c.link(c.p("out"), c.p("ext"))
    return dict(tool="vos", args=c.vos_args(), expect="either")


@case("out-folder")
def out_is_a_file(c):
    c.user(c.p("out"), b"a file")
    return dict(tool="vos", args=c.vos_args())


@case("out-folder")
def alpha_user_file(c):
    c.user(c.p("alpha", "001", "00000.png"), b"user")
    return dict(tool="vos", args=c.vos_args("--alpha", c.p("alpha")))


@case("out-folder")
def alpha_user_file_overwrite(c):
    c.user(c.p("alpha", "00000.png"), b"user")
    return dict(tool="vos", args=c.vos_args("--alpha", c.p("alpha"), "--overwrite"))


@case("out-folder")
def alpha_edited_output(c):
    c.prior("vos", c.vos_args("--alpha", c.p("alpha")))
    pngs = sorted(Path(c.p("alpha")).rglob("*.png"))
    c.user(pngs[0], b"edited")
    return dict(tool="vos", args=c.vos_args("--alpha", c.p("alpha"), "--overwrite"))


@case("out-folder")
def object_masks_user_file(c):
    c.user(c.p("out", "objects", "001", "00000.png"), b"user")
    return dict(tool="vos", args=c.vos_args("--object-masks", "--overwrite"))


@case("out-folder")
def object_masks_rerun_ok(c):
    c.prior("vos", c.vos_args("--object-masks"))
    return dict(tool="vos", args=c.vos_args("--object-masks"), expect="ok")


@case("out-folder")
def alpha_same_as_out(c):
    return dict(tool="vos", args=c.vos_args("--alpha", c.p("out")), expect="either")


# more user files, tampered manifests, links and reruns

# (1) user files of many names in --out / --alpha, with and without --overwrite
for _name in ["00000.png", "00001.png", "00007.png", "objects/001/00000.png", "objects/002/00001.png",
              "sub/x.png", ".hidden", "a.PNG"]:
    for _ow in (False, True):
        def _f(c, _name=_name, _ow=_ow):
            c.user(c.p("out", _name), b"user file")
            extra = ["--object-masks"] if _name.startswith("objects") else []
            return dict(tool="vos", args=c.vos_args(*extra, *(["--overwrite"] if _ow else [])), expect="either")
        case("out-folder", f"user_{_name.replace('/', '_')}{'_ow' if _ow else ''}")(_f)

for _name in ["00000.png", "001/00000.png", "002/00001.png", "notes.txt"]:
    for _ow in (False, True):
        def _f(c, _name=_name, _ow=_ow):
            c.user(c.p("alpha", _name), b"user file")
            return dict(tool="vos", args=c.vos_args("--alpha", c.p("alpha"), *(["--overwrite"] if _ow else [])),
                        expect="either")
        case("out-folder", f"alpha_user_{_name.replace('/', '_')}{'_ow' if _ow else ''}")(_f)


# (1) tampered manifests: a user file, claimed with a wrong hash / no hash / outside paths
def _tamper(c, edit, victim_rel="out/00005.png", frames="6"):
    c.prior("vos", c.vos_args())
    c.user(c.p(*victim_rel.split("/")), b"user file")
    m = c.read_manifest(c.p("out"))
    edit(m)
    c.write_manifest(c.p("out"), m)
    return dict(tool="vos", args=c.vos_args("--end", frames, "--overwrite"), expect="either")


_GOOD = {"size": 9, "sha256": sha(b"user file")}
_TAMPERS = {
    "wrong_size": lambda m: m["files"].__setitem__("00005.png", {"size": 1, "sha256": sha(b"user file")}),
    "null_hash": lambda m: m["files"].__setitem__("00005.png", {"size": 9, "sha256": None}),
    "upper_hash": lambda m: m["files"].__setitem__("00005.png", {"size": 9, "sha256": sha(b"x").upper()}),
    "entry_is_string": lambda m: m["files"].__setitem__("00005.png", "yes"),
    "entry_is_null": lambda m: m["files"].__setitem__("00005.png", None),
    "files_is_list": lambda m: m.__setitem__("files", list(m["files"]) + ["00005.png"]),
    "dot_slash": lambda m: m["files"].__setitem__("./00005.png", {"size": 1, "sha256": "0" * 64}),
    "dotdot_inside": lambda m: m["files"].__setitem__("sub/../00005.png", {"size": 1, "sha256": "0" * 64}),
    "format_missing": lambda m: m.pop("format"),
    "format_v1": lambda m: m.__setitem__("format", "seggpt-vos-manifest/1"),
    "format_v3": lambda m: m.__setitem__("format", "seggpt-vos-manifest/3"),
    "complete_false": lambda m: m.__setitem__("complete", False),
    "status_running": lambda m: m.__setitem__("status", "running"),
    "patterns_star": lambda m: m.__setitem__("patterns", ["*"]),
    "dirs_dotdot": lambda m: m.__setitem__("dirs", ["..", "../ext"]),
}
for _k, _e in _TAMPERS.items():
    case("out-folder", f"manifest_{_k}")(lambda c, _e=_e: _tamper(c, _e))

# outside paths with the RIGHT hash: must count as none, the victim must survive
_OUTSIDE = {
    "dotdot": lambda c: "../victim.png",
    "dotdot_deep": lambda c: "sub/../../victim.png",
    "abs": lambda c: c.p("victim.png"),
    "backslash": lambda c: "..\\victim.png",
    "in_dir": lambda c: "../in/clip_mask.png",
}
for _k, _rel in _OUTSIDE.items():
    def _f(c, _rel=_rel):
        c.prior("vos", c.vos_args())
        c.user(c.p("victim.png"), b"user file")
        m = c.read_manifest(c.p("out"))
        r = _rel(c)
        target = Path(c.p("out")) / r if not os.path.isabs(r) else Path(r)
        data = target.read_bytes() if target.exists() else b""
        m["files"][r] = {"size": len(data), "sha256": sha(data)}
        c.write_manifest(c.p("out"), m)
        return dict(tool="vos", args=c.vos_args("--overwrite"), expect="either")
    case("out-folder", f"manifest_outside_{_k}")(_f)

for _k, _data_ in {"empty": b"", "list": b"[]", "null": b"null", "number": b"3", "binary": bytes(range(256)),
                   "huge_nesting": b"[" * 5000 + b"]" * 5000, "utf16": '{"format": 1}'.encode("utf-16")}.items():
    def _f(c, _data_=_data_):
        c.prior("vos", c.vos_args())
        c.user(c.p("out", MANIFEST), _data_)
        return dict(tool="vos", args=c.vos_args("--overwrite"), expect="either")
    case("out-folder", f"manifest_garbage_{_k}")(_f)


@case("out-folder")
def manifest_is_directory(c):
    c.user(c.p("out", MANIFEST, "x"), b"x")
    return dict(tool="vos", args=c.vos_args("--overwrite"), expect="either")


@case("out-folder")
def manifest_is_symlink_to_user_file(c):
    c.prior("vos", c.vos_args())
    t = c.user(c.p("ext", "m.json"), Path(c.p("out", MANIFEST)).read_bytes())
    os.unlink(c.p("out", MANIFEST))
    c.link(c.p("out", MANIFEST), t)
    return dict(tool="vos", args=c.vos_args("--overwrite"), expect="either")


@case("out-folder")
def dangling_symlink_in_out(c):
    c.link(c.p("out", "00000.png"), c.p("nowhere.png"))
    return dict(tool="vos", args=c.vos_args("--overwrite"))


@case("out-folder")
def objects_dir_symlink(c):
    c.user(c.p("ext", "001", "00000.png"), b"user")
    c.link(c.p("out", "objects"), c.p("ext"))
    return dict(tool="vos", args=c.vos_args("--object-masks", "--overwrite"), expect="either")


@case("out-folder")
def alpha_subdir_symlink(c):
    c.user(c.p("ext", "00000.png"), b"user")
    c.link(c.p("alpha", "001"), c.p("ext"))
    return dict(tool="vos", args=c.vos_args("--alpha", c.p("alpha"), "--overwrite"), expect="either")


@case("out-folder")
def hardlink_to_our_output(c):
    c.prior("vos", c.vos_args())
    os.makedirs(c.p("ext"))
    os.link(c.p("out", "00000.png"), c.p("ext", "keep.png"))
    return dict(tool="vos", args=c.vos_args(), expect="either")


@case("out-folder")
def our_output_replaced_by_hardlink(c):
    c.prior("vos", c.vos_args())
    os.makedirs(c.p("ext"))
    shutil.copy(c.p("out", "00001.png"), c.p("ext", "keep.png"))
    os.unlink(c.p("out", "00001.png"))
    os.link(c.p("ext", "keep.png"), c.p("out", "00001.png"))
    return dict(tool="vos", args=c.vos_args("--overwrite"), expect="either")


@case("out-folder")
def rerun_fewer_frames_ok(c):
    c.prior("vos", c.vos_args())
    return dict(tool="vos", args=c.vos_args("--end", "1"), expect="ok")


@case("out-folder")
def rerun_more_frames_ok(c):
    c.prior("vos", c.vos_args("--end", "1"))
    return dict(tool="vos", args=c.vos_args(), expect="ok")


@case("out-folder")
def rerun_without_object_masks(c):
    c.prior("vos", c.vos_args("--object-masks"))
    return dict(tool="vos", args=c.vos_args(), expect="ok")


@case("out-folder")
def rerun_after_edit_object_mask(c):
    c.prior("vos", c.vos_args("--object-masks"))
    c.user(c.p("out", "objects", "001", "00000.png"), b"edited")
    return dict(tool="vos", args=c.vos_args(), expect="either")


@case("out-folder")
def rerun_alpha_fewer_frames(c):
    c.prior("vos", c.vos_args("--alpha", c.p("alpha")))
    return dict(tool="vos", args=c.vos_args("--alpha", c.p("alpha"), "--end", "1"), expect="ok")


@case("out-folder")
def fifo_in_out(c):
    os.makedirs(c.p("out"))
    os.mkfifo(c.p("out", "00000.png"))
    return dict(tool="vos", args=c.vos_args("--overwrite"), sub=True)


@case("out-folder")
def out_folder_of_other_tool(c):
    c.prior("seggpt", ["--prompt", c.frames + "/00000.png", c.m, c.frames + "/00001.png", "--out", c.p("out"),
                       "--weights", "small"])
    return dict(tool="vos", args=c.vos_args(), expect="either")


for _k in ("status_running", "entry_is_null"):
    def _f(c, _k=_k):
        spec = _tamper(c, _TAMPERS[_k])
        spec["args"] = [a for a in spec["args"] if a != "--overwrite"]
        return spec
    case("out-folder", f"manifest_{_k}_no_ow")(_f)


@case("out-folder")
def manifest_status_running_user_listed_nothing(c):
    # an unfinished run's manifest (no files listed) + a user PNG: never ours
    os.makedirs(c.p("out"))
    c.user(c.p("out", "00000.png"), b"user file")
    c.write_manifest(c.p("out"), {"format": "seggpt-vos-manifest/2", "tool": "vos.run", "status": "running",
                                  "files": {}, "patterns": ["*.png"], "dirs": []})
    return dict(tool="vos", args=c.vos_args("--overwrite"), expect="either")
