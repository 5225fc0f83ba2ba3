"""The package's layout is its architecture: the maths never reaches for processes, and a notebook that studies
graphs does not load the RL stack."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "galakit"
HEAVY = ("ale_py", "gymnasium", "torch.distributed", "tqdm")


def loaded_after(code: str) -> list[str]:
    """The HEAVY modules a fresh interpreter has loaded after running ``code``."""
    probe = f"import sys\n{code}\nimport json\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


@pytest.mark.parametrize("code", ["import galakit", "import galakit.gossip", "from galakit import build_topology",
                                  "from galakit.gossip import build_topology, TOPOLOGIES",
                                  "from galakit import Config; Config(algo='gala', num_learners=4)"])
@pytest.mark.processes
def test_studying_graphs_does_not_load_the_rl_stack(code):
    assert loaded_after(code) == []


@pytest.mark.processes
def test_the_check_above_can_fail():
    assert "gymnasium" in loaded_after("from galakit import make_vec_env")


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("path", sorted((PACKAGE / "gossip").glob("*.py")), ids=lambda p: p.name)
def test_the_maths_never_imports_processes_disk_or_views(path):
    forbidden = [m for m in imported_modules(path)
                 if m.startswith(("galakit.runtime", "galakit.io", "galakit.views", "galakit.rl"))]
    assert forbidden == []


@pytest.mark.processes
def test_the_package_init_never_imports_the_views():
    source = (PACKAGE / "__init__.py").read_text()
    assert not [m for m in imported_modules(PACKAGE / "__init__.py") if m.startswith("galakit.views")]
    assert "galakit.views" not in source.split("_EXPORTS")[1]  # not lazily either
    code = "import galakit\nfor name in galakit.__all__: getattr(galakit, name)\nimport sys\n" \
           "assert 'galakit.views' not in sys.modules and 'matplotlib' not in sys.modules, 'views loaded'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_public_name_resolves_and_unknown_names_fail():
    import galakit

    for name in galakit.__all__:
        assert getattr(galakit, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        galakit.nope  # noqa: B018
