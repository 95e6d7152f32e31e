"""How the package is built, checked: what the library may import, what its
wheel holds, and where Keras models are built (docs/architecture.md)."""

import ast
import configparser
import pathlib
import re

import setuptools

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "keras_conductance"


def imports(path: pathlib.Path):
    """The module names ``path`` imports, at any depth (lazy imports too)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            if node.module == "keras_conductance":  # from keras_conductance import engine
                yield from (f"keras_conductance.{alias.name}" for alias in node.names
                            if (LIBRARY / f"{alias.name}.py").exists())


def test_the_library_never_imports_the_studies():
    modules = sorted(LIBRARY.rglob("*.py")) + [ROOT / "keras_conductance_cli.py"]
    assert len(modules) > 30
    found = [(p.relative_to(ROOT), name) for p in modules for name in imports(p)
             if name.split(".")[0] == "conductance_studies"]
    assert not found, f"library modules importing the studies: {found}"


def test_the_library_wheel_holds_no_studies():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    include = config["options.packages.find"]["include"].split()
    packages = setuptools.find_packages(str(ROOT), include=include)
    assert "keras_conductance" in packages and "keras_conductance.callbacks" in packages
    assert not [p for p in packages if "studies" in p or "datasets" in p], packages
    assert config["options"]["py_modules"].split() == ["keras_conductance_cli"]
    # The studies are a package of their own, beside the library.
    assert (ROOT / "studies" / "pyproject.toml").is_file()
    assert not (LIBRARY / "studies").exists() and not (LIBRARY / "datasets").exists()


def test_the_package_init_does_not_read_the_command_line():
    source = (LIBRARY / "__init__.py").read_text()
    assert "argv" not in source and "time" not in source


# Keras' private attributes (and its private package): only the model
# boundary, adapter.py and graph.py, may lean on them.
KERAS_PRIVATES = re.compile(
    r"keras\.src\b|\._keras_history\b|\._inbound_nodes\b|\._outbound_nodes\b|"
    r"\._inputs_struct\b|\._outputs_struct\b|\._layers\b|\._operations\b|"
    r"\._build_shapes_dict\b|\._call_signature\b|\._tracker\b")
BOUNDARY = {"adapter.py", "graph.py"}


def outside_the_boundary():
    return [p for p in sorted(LIBRARY.rglob("*.py")) if p.name not in BOUNDARY]


def test_only_the_adapter_and_graph_build_keras_models():
    found = []
    # demo.py builds the demo's own CNN, a user's model, not a view of one.
    for path in (p for p in outside_the_boundary() if p.name != "demo.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) in (
                    "keras.Model", "keras.models.Model", "Model", "keras.Sequential"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, f"keras.Model built outside adapter.py/graph.py: {found}"


def test_only_the_adapter_and_graph_touch_keras_privates():
    found = [f"{p.relative_to(ROOT)}:{i}" for p in outside_the_boundary()
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if KERAS_PRIVATES.search(line.split("#")[0])]
    assert not found, f"Keras privates outside adapter.py/graph.py: {found}"
    # ... and the boundary does use them (else this pattern tests nothing).
    assert KERAS_PRIVATES.search((LIBRARY / "adapter.py").read_text())


# The layers of docs/architecture.md, bottom first: a module imports only
# modules of its own layer or of a layer below.
LAYERS = [
    {"arguments", "cache", "folders", "checkpoint", "progress", "interrupts", "plotting"},
    {"graph", "taps", "unit_meanings", "targets", "token_targets", "adapter"},
    {"quadrature", "engine", "adaptive", "attribution", "top_examples", "dataset_result"},
    {"explainer", "functional", "neuron", "ablation", "dataset_conductance", "pixels", "split"},
    {"callbacks", "cli", "loading", "report", "report_figures", "report_html", "class_names",
     "demo", "browser", "browser_maps", "browser_page"},
]


def layer_of(module: str) -> int:
    top = module.split(".")[0]
    return next(i for i, names in enumerate(LAYERS) if top in names)


def test_every_import_points_down():
    modules = {p: ".".join(p.relative_to(LIBRARY).with_suffix("").parts)
               for p in LIBRARY.rglob("*.py") if p.name != "__init__.py"}
    assert {m.split(".")[0] for m in modules.values()} == set().union(*LAYERS)
    upward = []
    for path, module in modules.items():
        for name in imports(path):
            if name.startswith("keras_conductance."):
                used = name.removeprefix("keras_conductance.")
                if layer_of(used) > layer_of(module):
                    upward.append(f"{module} -> {used}")
    assert not upward, f"imports pointing up a layer: {upward}"
