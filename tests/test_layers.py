"""The import order of the project's layers (README, "Layout"), checked on every import statement.

    torch-free seggpt  <  seggpt  <  vos.io  <  vos.data  <  vos.engine  <  vos.editing
        <  vos's entry points (vos, vos.run, vos.app, vos.demo, vos.sam2, vos.scripts)  <  training  <  benchmarks

A module may import from its own layer and the layers before it, never from a later one; the
torch-free modules (seggpt's bottom layer, vos.io, vos.data) import neither torch nor a module that
does. Imports inside functions count as much as those at the top of a file (only ``if TYPE_CHECKING:``
blocks, which never run, are skipped). tests/ may import anything. A subprocess then checks what
matters in practice: the light entry points really start without torch.
"""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import seggpt

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("seggpt", "vos", "training", "benchmarks")

#: the bottom layer: no torch, importable by everything (README's torch-free list)
TORCH_FREE = ("seggpt", "seggpt.colors", "seggpt.config", "seggpt.errors", "seggpt.masks", "seggpt.io",
              "seggpt.weights_file", "seggpt.settings", "seggpt.cli", "seggpt.outputs", "seggpt.run_checks",
              "seggpt.manifest", "seggpt.mask_cleaning")
#: vos's sub-packages, bottom first; vos's own modules (its entry points) come after them
VOS_LAYERS = ("io", "data", "engine", "editing")
#: vos's torch-free sub-packages: file and dataset work, J&F, in light worker processes
VOS_TORCH_FREE = ("io", "data")
#: third-party packages the torch-free layer must not import (they load torch)
TORCH_PACKAGES = ("torch", "torchvision", "transformers", "safetensors", "einops")


def layer(module: str) -> int | None:
    """0 torch-free seggpt, 1 seggpt, 2-5 vos.io / data / engine / editing, 6 vos's entry points,
    7 training, 8 benchmarks; None outside the project."""
    if module in TORCH_FREE:
        return 0
    parts = module.split(".")
    if parts[0] == "vos":
        sub = parts[1] if len(parts) > 1 else ""
        return 2 + (VOS_LAYERS.index(sub) if sub in VOS_LAYERS else len(VOS_LAYERS))
    return {"seggpt": 1, "training": 7, "benchmarks": 8}.get(parts[0])


def torch_free(module: str) -> bool:
    parts = module.split(".")
    return module in TORCH_FREE or (parts[0] == "vos" and len(parts) > 1 and parts[1] in VOS_TORCH_FREE)


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = project_modules()


def _is_type_checking(node: ast.If) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``."""
    return "TYPE_CHECKING" in (getattr(node.test, "id", None), getattr(node.test, "attr", None))


def _import_nodes(tree: ast.AST):
    """Every Import / ImportFrom, at any depth, except inside ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        for child in ast.iter_child_nodes(node):
            skipped = isinstance(child, ast.If) and _is_type_checking(child)
            stack.extend(child.orelse if skipped else [child])


def imports_of(module: str, path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import of ``module``; names resolved to the module that defines them."""
    exports = seggpt._EXPORTS  # the package's lazy exports: name -> the module that defines it
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
            continue
        base = node.module or ""
        if node.level:  # relative: the package itself, one package up for each further dot
            base = ".".join([package.rsplit(".", node.level - 1)[0]] + ([node.module] if node.module else []))
        for alias in node.names:
            full = f"{base}.{alias.name}"
            if full in MODULES:
                found.append((node.lineno, full))  # from package import module
            elif base == "seggpt" and alias.name in exports:
                found.append((node.lineno, exports[alias.name]))  # a lazy export: where it is defined
            else:
                found.append((node.lineno, base))
    return found


def test_the_parser_resolves_relative_lazy_and_local_imports():
    seen = dict((name, line) for line, name in imports_of("vos.engine.segmenter", MODULES["vos.engine.segmenter"]))
    assert "seggpt.model" in seen  # "from seggpt import SegGPT" is the model, not the torch-free package
    assert "vos.engine.config" in seen  # "from .config import EngineConfig"
    local = {name for _, name in imports_of("benchmarks.methods", MODULES["benchmarks.methods"])}
    assert "vos" in local or "vos.engine.segmenter" in local  # an import inside a function counts


def test_imports_follow_the_layer_order():
    wrong = []
    for module, path in MODULES.items():
        own = layer(module)
        for line, target in imports_of(module, path):
            theirs = layer(target)
            if theirs is not None and theirs > own:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {module} (layer {own}) imports {target} (layer {theirs})")
    assert not wrong, "imports against the order of the layers (this file's docstring):\n" + \
        "\n".join(wrong)


def test_torch_free_modules_import_no_torch():
    wrong = []
    for module in filter(torch_free, MODULES):
        path = MODULES[module]
        for line, target in imports_of(module, path):
            if target.split(".")[0] in TORCH_PACKAGES or (layer(target) is not None and not torch_free(target)):
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {target}")
    assert not wrong, "the torch-free layer imports torch (or a module that does):\n" + "\n".join(wrong)


def _fresh_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("statement", [
    "import seggpt, seggpt.colors, seggpt.config, seggpt.masks, seggpt.io",
    "import vos.data.metrics, vos.data.datasets, vos.data.synthetic",
    "import vos.io.video, vos.io.prompts, vos.io.outputs, vos.io.writers, vos.io.exports",
    "import vos.editing.drawing, vos.editing.canvas",  # the app's gestures and canvas: no model needed to draw
    "import runpy; sys.argv = ['benchmarks.evaluate', '--help']\n"
    "try:\n    runpy.run_module('benchmarks.evaluate', run_name='__main__')\nexcept SystemExit as e:\n    assert e.code == 0",
])
def test_light_entry_points_start_without_torch(statement):
    done = _fresh_python(f"import sys\n{statement}\nprint('torch loaded' if 'torch' in sys.modules else 'no torch')")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "no torch"


def test_package_exports_load_on_first_use():
    """`from seggpt import SegGPT, SegGPTPredictor` works (it raised ImportError) and loads torch only then."""
    done = _fresh_python(
        "import sys\nimport seggpt\nbefore = 'torch' in sys.modules\n"
        "from seggpt import PRESETS, SegGPT, SegGPTConfig, SegGPTPredictor, get_config\n"
        "from seggpt.model import SegGPT as Model\nfrom seggpt.predictor import SegGPTPredictor as Predictor\n"
        "assert SegGPT is Model and SegGPTPredictor is Predictor and get_config('small') is PRESETS['small']\n"
        "assert isinstance(PRESETS['small'], SegGPTConfig) and sorted(seggpt.__all__) == sorted("
        "['SegGPT', 'SegGPTPredictor', 'SegGPTConfig', 'PRESETS', 'get_config'])\n"
        "print(before, 'torch' in sys.modules)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        seggpt.Nope  # noqa: B018


def test_the_loader_imports_the_model_and_the_model_file_is_the_network():
    """seggpt.weights (the one loader) builds the model, so it imports seggpt.model; the model file imports
    only its config at the top, and reaches the loader inside from_pretrained / save_pretrained alone."""
    assert "seggpt.model" in {name for _, name in imports_of("seggpt.weights", MODULES["seggpt.weights"])}
    tree = ast.parse(MODULES["seggpt.model"].read_text())
    top = {name for line, name in imports_of("seggpt.model", MODULES["seggpt.model"])
           if layer(name) is not None and any(node.lineno == line for node in tree.body)}
    assert top == {"seggpt.config"}
    local = {f.name: {n.module for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
             for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
    assert {name: modules for name, modules in local.items() if modules} == {
        "from_pretrained": {"weights"}, "save_pretrained": {"weights"}}


def test_install_requires_are_all_used_and_cv2_comes_from_one_package():
    """Every requirement is imported somewhere (einops was not), and OpenCV is `opencv-python`: the
    test extra's vos-benchmark installs it, and a headless copy beside it would give two `cv2`."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    names = [re.split(r"[\s;<>=!\[]", line.strip(), maxsplit=1)[0].lower()
             for line in cfg["options"]["install_requires"].strip().splitlines() if line.strip()]
    module_of = {"torch": "torch", "numpy": "numpy", "tqdm": "tqdm", "opencv-python": "cv2", "decord": "decord",
                 "av": "av", "pillow": "PIL", "safetensors": "safetensors", "huggingface_hub": "huggingface_hub",
                 "pyyaml": "yaml"}
    assert "opencv-python-headless" not in names and "opencv-python" in names
    unknown = [n for n in names if n not in module_of]
    assert not unknown, f"add the import name of {unknown} to this test"
    used = {target.split(".")[0] for module, path in MODULES.items() for _, target in imports_of(module, path)}
    unused = [n for n in names if module_of[n] not in used]
    assert not unused, f"install_requires lists packages nothing imports: {unused}"


def test_no_import_circle():
    """No two modules import each other, directly or through others (imports inside functions count too).
    One edge is left out on purpose: `SegGPT.from_pretrained` / `save_pretrained` reach the one loader,
    `seggpt.weights`, which builds the model (the test above pins that edge to those two methods)."""
    graph = {m: {t for _, t in imports_of(m, p) if t in MODULES and t != m} for m, p in MODULES.items()}
    graph["seggpt.model"].discard("seggpt.weights")
    reach = {}  # module -> every module it reaches through its imports
    for m in graph:
        seen, todo = set(), list(graph[m])
        while todo:
            t = todo.pop()
            if t not in seen:
                seen.add(t)
                todo.extend(graph[t])
        reach[m] = seen
    # a circle: the modules that reach a module and are reached by it
    circles = sorted({tuple(sorted({m} | {t for t in reach[m] if m in reach[t]})) for m in graph if m in reach[m]})
    assert not circles, "modules that import each other: " + "; ".join(" <-> ".join(c) for c in circles)


def test_readme_lists_the_torch_free_layer_this_file_checks():
    """README's Layout and this file name the same torch-free seggpt modules (they once disagreed)."""
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("seggpt/        torch-free layer"):readme.index("seggpt/        the model")]
    listed = {f"seggpt.{name}" for name in re.findall(r"^  (\w+)\.py", block, flags=re.M)}
    assert listed == set(TORCH_FREE) - {"seggpt"}
