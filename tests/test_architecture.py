"""The layers: `components/` and `serving/` import no other layer, `pipeline/` composes them, production code never
imports `tests/`, no module imports itself through a circle (imports inside functions count too), and none
imports `tfx.v1`."""
import ast
from pathlib import Path
from typing import Dict, List, Set

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = ("components", "serving", "pipeline")
PROJECT = LAYERS + ("tests",)
# What each layer may import from the project besides itself.
ALLOWED = {"components": set(), "serving": set(), "pipeline": {"components", "serving"}}


def _module_name(path: Path) -> str:
  parts = path.relative_to(REPO).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> Dict[str, Path]:
  return {_module_name(path): path for layer in LAYERS for path in (REPO / layer).rglob("*.py")
          if not path.name.endswith("_pb2.py")}


def _imports(path: Path, known: Set[str]) -> Set[str]:
  """Project modules `path` imports anywhere in it; `from package import module` names the module."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      for alias in node.names:
        candidate = f"{node.module}.{alias.name}"
        found.add(candidate if candidate in known else node.module)
  return {name for name in found if name.split(".")[0] in PROJECT}


@pytest.fixture(scope="module")
def graph() -> Dict[str, Set[str]]:
  modules = _modules()
  return {name: _imports(path, set(modules)) for name, path in modules.items()}


def test_no_layer_imports_a_layer_above_it_or_the_tests(graph):
  upward: List[str] = []
  for module, imported in graph.items():
    layer = module.split(".")[0]
    for target in imported:
      target_layer = target.split(".")[0]
      if target_layer != layer and target_layer not in ALLOWED[layer]:
        upward.append(f"{module} imports {target}")
  assert not upward, "\n".join(sorted(upward))


def _circles(graph: Dict[str, Set[str]]) -> List[str]:
  """Every import circle a depth-first walk of `graph` (module -> modules it imports) closes."""
  state: Dict[str, str] = {}  # module -> "open" while on the path, "done" after
  circles: List[str] = []

  def visit(module: str, path: List[str]) -> None:
    state[module] = "open"
    for target in sorted(graph.get(module, ())):
      if state.get(target) == "open":
        circles.append(" -> ".join(path[path.index(target):] + [module, target]) if target in path
                       else f"{module} -> {target}")
      elif target in graph and target not in state:
        visit(target, path + [module])
    state[module] = "done"

  for module in sorted(graph):
    if module not in state:
      visit(module, [])
  return circles


def test_there_is_no_import_circle(graph):
  circles = _circles(graph)
  assert not circles, "\n".join(circles)


def test_the_checker_sees_a_circle():
  assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]


def test_the_checker_sees_an_upward_import(tmp_path):
  """The walk finds imports inside functions, so a lazy upward import cannot hide."""
  module = tmp_path / "lazy.py"
  module.write_text("def f():\n  from pipeline.config import PipelineConfig\n  return PipelineConfig\n")
  assert _imports(module, {"pipeline.config"}) == {"pipeline.config"}


def test_no_module_imports_tfx_v1():
  """TFX's public `tfx.v1` package also imports its Google Cloud AI Platform extensions (google-cloud-aiplatform),
  3-5 s of every process's start-up on the development machine; the project imports TFX's own modules."""
  found = []
  for path in [*_modules().values(), *(REPO / "tests").rglob("*.py"), *(REPO / "bench").rglob("*.py")]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
      names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
               [f"{node.module}.{alias.name}" for alias in node.names] if isinstance(node, ast.ImportFrom) else [])
      found += [f"{path.relative_to(REPO)}:{node.lineno}" for name in names
                if name == "tfx.v1" or name.startswith("tfx.v1.")]
  assert not found, found
