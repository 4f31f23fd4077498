"""pyproject.toml declares what the code imports, and imports what it declares.

Every .py file of the repository (model code, scripts, bench/, tests/) is parsed with `ast`; the
top-level name of each absolute import (inside functions and `try` blocks too) that is neither
standard library (sys.stdlib_module_names) nor this repository (`dnabert2`, or the name of one of
its own .py files: bench modules import their siblings) must map to a distribution in
`dependencies` or the `test` extra; and every distribution declared there must be imported somewhere,
unless it is listed in USED_WITHOUT_IMPORT with the reason.
"""

import ast
import re
import sys
import tomllib

from helpers import REPO_ROOT

# Import name -> distribution name, where the two differ (others: the import name, normalized).
DISTRIBUTION_OF = {"sklearn": "scikit-learn", "yaml": "pyyaml", "Bio": "biopython", "PIL": "pillow"}
# Declared distributions that no file imports by name, and why they are still needed.
USED_WITHOUT_IMPORT = {
    "accelerate": "transformers.Trainer (pretrain.py, finetune_gue.py) refuses to run without it",
}
SKIPPED_FOLDERS = {"build", "dist", "__pycache__", "node_modules", "site-packages"}


def normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them: lower case, runs of - _ . as one -."""
    return re.sub(r"[-_.]+", "-", name).lower()


def repo_python_files() -> list:
    return [
        path for path in REPO_ROOT.rglob("*.py")
        if not any(part.startswith(".") or part in SKIPPED_FOLDERS or part.endswith(".egg-info")
                   for part in path.relative_to(REPO_ROOT).parts)
    ]


def third_party_imports(files: list) -> dict[str, set[str]]:
    """Top-level import name -> the files that import it, for names outside stdlib and this repo."""
    local = {path.stem for path in files} | {"dnabert2"}
    found: dict[str, set[str]] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local:
                    found.setdefault(top, set()).add(str(path.relative_to(REPO_ROOT)))
    return found


def declared_distributions(pyproject: dict) -> set[str]:
    """`dependencies` plus the `test` extra, by name (versions and markers dropped)."""
    requirements = [*pyproject["project"]["dependencies"], *pyproject["project"]["optional-dependencies"]["test"]]
    return {normalized(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", r).group(1)) for r in requirements}


def test_every_third_party_import_is_declared_and_every_declared_dependency_is_imported():
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    declared = declared_distributions(pyproject)
    imports = third_party_imports(repo_python_files())
    imported = {normalized(DISTRIBUTION_OF.get(name, name)): files for name, files in imports.items()}

    undeclared = {dist: sorted(files) for dist, files in imported.items() if dist not in declared}
    assert not undeclared, f"imported but not in pyproject.toml dependencies or the test extra: {undeclared}"
    unused = declared - set(imported) - {normalized(d) for d in USED_WITHOUT_IMPORT}
    assert not unused, f"declared in pyproject.toml but imported nowhere (or add to USED_WITHOUT_IMPORT with why): {sorted(unused)}"
    stale = {normalized(d) for d in USED_WITHOUT_IMPORT} & set(imported)
    assert not stale, f"USED_WITHOUT_IMPORT lists distributions that are imported after all: {sorted(stale)}"


def test_the_collector_sees_imports_in_functions_and_try_blocks():
    """The guarded `import triton` and function-level imports count (triton is declared with a marker)."""
    imports = third_party_imports(repo_python_files())
    assert "flash_attn_triton.py" in imports["triton"]
    assert "task_types.py" in imports["scipy"]  # `from scipy.stats import ...` inside a function
    assert "dnabert2" not in imports and "helpers" not in imports and "kernel_check" not in imports
