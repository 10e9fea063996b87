"""The out-folder cases of the second output pass (`benchmarks.output_safety_cases`): --out, --alpha and
--object-masks folders.

User files of many names in them, with and without --overwrite; our outputs edited, replaced by links
or hard links; manifests tampered with (wrong or missing hashes, paths outside the folder with the
right hash, garbage, a folder or a link in the manifest's place); reruns with fewer or more frames.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from .output_pass import MANIFEST, Scene, case, edit_manifest, listed, sha, vos_case, write_manifest

# --------------------------------------------------------------------------- (1) out folders

F = "out-folder"
vos_case(F, "user_png_in_out", prep=lambda c: c.user("@out/00000.png", b"not ours"))
vos_case(F, "user_png_in_out_overwrite", "--overwrite", prep=lambda c: c.user("@out/00001.png", b"not ours"))
vos_case(F, "rerun_unchanged_ok", prior=[], expect="ok")
vos_case(F, "rerun_unchanged_with_alpha_ok", "--alpha", "@alpha", "--report", "@r.json",
         prior=["--alpha", "@alpha", "--report", "@r.json"], expect="ok")
vos_case(F, "edited_output_refused", prior=[], prep=lambda c: c.user("@out/00000.png", b"edited by user"))
vos_case(F, "edited_output_refused_overwrite", "--overwrite", prior=[],
         prep=lambda c: c.user("@out/00001.png", b"edited by user"))


def _edit_manifest(c, edit, name="00005.png", data=b"user file"):
    """A user file `name` in out/ (after an earlier run), then out/'s manifest changed by `edit`."""
    c.user(c.p("out", name), data)
    edit_manifest(c.p("out"), edit)


vos_case(F, "user_file_slipped_into_manifest", "--end", "6", "--overwrite", prior=[],
         prep=lambda c: _edit_manifest(c, listed("00005.png", {"size": 9, "sha256": "0" * 64})))
vos_case(F, "user_non_png_in_out", prep=lambda c: c.user("@out/notes.txt", b"keep me"), expect="ok_or_refuse")
vos_case(F, "slipped_name_without_hash", "--end", "3", "--overwrite", prior=[],
         prep=lambda c: _edit_manifest(c, listed("00002.png", {}), "00002.png"))
vos_case(F, "garbage_manifest", "--overwrite",
         prep=lambda c: (c.user("@out/00000.png", b"user"), c.user(c.p("out", MANIFEST), b"{not json")))
vos_case(F, "unknown_format_manifest", "--overwrite", prior=[],
         prep=lambda c: _edit_manifest(c, lambda m: (m.__setitem__("format", "something-else/9"),
                                                     listed("00000.png", {"size": 4, "sha256": sha(b"user")})(m)),
                                       "00000.png", b"user"))


vos_case(F, "manifest_dotdot_path", "--overwrite", prior=[], prep=lambda c: _outside(c, "../victim.png", b"user"),
         expect="ok_or_refuse")
vos_case(F, "manifest_abs_path", "--overwrite", prior=[], prep=lambda c: _outside(c, c.p("victim.png"), b"user"), expect="ok_or_refuse")
vos_case(F, "symlink_png_in_out", "--overwrite", prep=lambda c: c.link("@out/00000.png", c.user("@ext/target.png", b"target")))
vos_case(F, "symlink_ours_replaced_by_link", "--overwrite", prior=[],
         prep=lambda c: c.link("@out/00000.png", c.user("@ext/target.png", Path(c.p("out", "00000.png")).read_bytes())))
vos_case(F, "out_is_symlink_to_dir", prep=lambda c: (c.user("@ext/00000.png", b"user"), c.link("@out", "@ext")),
         expect="ok_or_refuse")
vos_case(F, "out_is_a_file", prep=lambda c: c.user("@out", b"a file"))
vos_case(F, "alpha_user_file", "--alpha", "@alpha", prep=lambda c: c.user("@alpha/001/00000.png", b"user"))
vos_case(F, "alpha_user_file_overwrite", "--alpha", "@alpha", "--overwrite", prep=lambda c: c.user("@alpha/00000.png", b"user"))
vos_case(F, "alpha_edited_output", "--alpha", "@alpha", "--overwrite", prior=["--alpha", "@alpha"],
         prep=lambda c: c.user(sorted(Path(c.p("alpha")).rglob("*.png"))[0], b"edited"))
vos_case(F, "object_masks_user_file", "--object-masks", "--overwrite",
         prep=lambda c: c.user("@out/objects/001/00000.png", b"user"))
vos_case(F, "object_masks_rerun_ok", "--object-masks", prior=["--object-masks"], expect="ok")
vos_case(F, "alpha_same_as_out", "--alpha", "@out", expect="ok_or_refuse")

# more user files, tampered manifests, links and reruns

# (1) user files of many names in --out / --alpha, with and without --overwrite
for _name in ["00000.png", "00001.png", "00007.png", "objects/001/00000.png", "objects/002/00001.png",
              "sub/x.png", ".hidden", "a.PNG"]:
    for _ow in ([], ["--overwrite"]):
        vos_case(F, f"user_{_name.replace('/', '_')}{'_ow' if _ow else ''}",
                 *(["--object-masks"] if _name.startswith("objects") else []), *_ow,
                 prep=lambda c, _name=_name: c.user(c.p("out", _name), b"user file"), expect="ok_or_refuse")

for _name in ["00000.png", "001/00000.png", "002/00001.png", "notes.txt"]:
    for _ow in ([], ["--overwrite"]):
        vos_case(F, f"alpha_user_{_name.replace('/', '_')}{'_ow' if _ow else ''}", "--alpha", "@alpha", *_ow,
                 prep=lambda c, _name=_name: c.user(c.p("alpha", _name), b"user file"), expect="ok_or_refuse")

# (1) tampered manifests: a user file, claimed with a wrong hash / no hash / outside paths
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
    vos_case(F, f"manifest_{_k}", "--end", "6", "--overwrite", prior=[], prep=lambda c, _e=_e: _edit_manifest(c, _e),
             expect="ok_or_refuse")

# outside paths with the RIGHT hash: must count as none, the victim must survive
_OUTSIDE = {
    "dotdot": lambda c: "../victim.png",
    "dotdot_deep": lambda c: "sub/../../victim.png",
    "abs": lambda c: c.p("victim.png"),
    "backslash": lambda c: "..\\victim.png",
    "in_dir": lambda c: "../in/clip_mask.png",
}


def _outside(c: Scene, rel: str, data: bytes = b"user file") -> None:
    """A user file beside out/; out/'s manifest lists the path `rel` with the real hash of what it names."""
    c.user(c.p("victim.png"), data)
    target = Path(c.p("out")) / rel if not os.path.isabs(rel) else Path(rel)
    data = target.read_bytes() if target.exists() else b""
    edit_manifest(c.p("out"), listed(rel, {"size": len(data), "sha256": sha(data)}))


for _k, _rel in _OUTSIDE.items():
    vos_case(F, f"manifest_outside_{_k}", "--overwrite", prior=[], prep=lambda c, _rel=_rel: _outside(c, _rel(c)),
             expect="ok_or_refuse")
for _k, _data_ in {"empty": b"", "list": b"[]", "null": b"null", "number": b"3", "binary": bytes(range(256)),
                   "huge_nesting": b"[" * 5000 + b"]" * 5000, "utf16": '{"format": 1}'.encode("utf-16")}.items():
    vos_case(F, f"manifest_garbage_{_k}", "--overwrite", prior=[],
             prep=lambda c, _data_=_data_: c.user(c.p("out", MANIFEST), _data_), expect="ok_or_refuse")
vos_case(F, "manifest_is_directory", "--overwrite", prep=lambda c: c.user(c.p("out", MANIFEST, "x"), b"x"),
         expect="ok_or_refuse")


@case(F, expect="ok_or_refuse")
def manifest_is_symlink_to_user_file(c):
    c.prior("vos", c.vos_args())
    t = c.user(c.p("ext", "m.json"), Path(c.p("out", MANIFEST)).read_bytes())
    os.unlink(c.p("out", MANIFEST))
    c.link(c.p("out", MANIFEST), t)
    return c.call("vos", c.vos_args("--overwrite"))


vos_case(F, "dangling_symlink_in_out", "--overwrite", prep=lambda c: c.link("@out/00000.png", "@nowhere.png"))
vos_case(F, "objects_dir_symlink", "--object-masks", "--overwrite",
         prep=lambda c: (c.user("@ext/001/00000.png", b"user"), c.link("@out/objects", "@ext")), expect="ok_or_refuse")
vos_case(F, "alpha_subdir_symlink", "--alpha", "@alpha", "--overwrite",
         prep=lambda c: (c.user("@ext/00000.png", b"user"), c.link("@alpha/001", "@ext")), expect="ok_or_refuse")
vos_case(F, "hardlink_to_our_output", prior=[],
         prep=lambda c: (os.makedirs(c.p("ext")), os.link(c.p("out", "00000.png"), c.p("ext", "keep.png"))),
         expect="ok_or_refuse")


def _replaced_by_hardlink(c):
    os.makedirs(c.p("ext"))
    shutil.copy(c.p("out", "00001.png"), c.p("ext", "keep.png"))
    os.unlink(c.p("out", "00001.png"))
    os.link(c.p("ext", "keep.png"), c.p("out", "00001.png"))


vos_case(F, "our_output_replaced_by_hardlink", "--overwrite", prior=[], prep=_replaced_by_hardlink, expect="ok_or_refuse")
vos_case(F, "rerun_fewer_frames_ok", "--end", "1", prior=[], expect="ok")
vos_case(F, "rerun_more_frames_ok", prior=["--end", "1"], expect="ok")
vos_case(F, "rerun_without_object_masks", prior=["--object-masks"], expect="ok")
vos_case(F, "rerun_after_edit_object_mask", prior=["--object-masks"],
         prep=lambda c: c.user("@out/objects/001/00000.png", b"edited"), expect="ok_or_refuse")
vos_case(F, "rerun_alpha_fewer_frames", "--alpha", "@alpha", "--end", "1", prior=["--alpha", "@alpha"], expect="ok")
vos_case(F, "fifo_in_out", "--overwrite", prep=lambda c: (os.makedirs(c.p("out")), os.mkfifo(c.p("out", "00000.png"))),
         sub=True)


@case(F, expect="ok_or_refuse")
def out_folder_of_other_tool(c):
    c.prior("seggpt", ["--prompt", c.frames + "/00000.png", c.m, c.frames + "/00001.png", "--out", c.p("out"),
                       "--weights", "small"])
    return c.call("vos", c.vos_args())


for _k in ("status_running", "entry_is_null"):
    vos_case(F, f"manifest_{_k}_no_ow", "--end", "6", prior=[], prep=lambda c, _k=_k: _edit_manifest(c, _TAMPERS[_k]),
             expect="ok_or_refuse")


def _running_manifest_listing_nothing(c):
    # an unfinished run's manifest (no files listed) + a user PNG: never ours
    os.makedirs(c.p("out"))
    c.user(c.p("out", "00000.png"), b"user file")
    write_manifest(c.p("out"), {"format": "seggpt-vos-manifest/2", "tool": "vos.run", "status": "running",
                                  "files": {}, "patterns": ["*.png"], "dirs": []})


vos_case(F, "manifest_status_running_user_listed_nothing", "--overwrite", prep=_running_manifest_listing_nothing,
         expect="ok_or_refuse")
