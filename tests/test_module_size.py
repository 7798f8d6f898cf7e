"""The size rule: no module of the library over MAX_LINES lines unless it is listed, with why.

A module grows past the limit only as one cohesive thing (docs/architecture.md, "Large
modules"); anything else is split along its seams. The allow-list names every exception
and its reason, so a new large module fails here instead of growing unnoticed.
"""

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rls_tf"
MAX_LINES = 460

# path relative to the repository root -> why it may be longer than MAX_LINES.
ALLOWED = {
    "rls_tf/attacks/square.py": "one algorithm: the Square Attack's search, its schedule "
                                "and its candidate sampling, each used only by it",
    "rls_tf/evaluation/runner.py": "one orchestrator: run_evaluation and the Evaluation class "
                                   "it drives; about 50 lines are the protocol docstring",
    "rls_tf/reproduction/suites.py": "the suite schema and the three built-in suites written in "
                                     "it (data tables); committed results cite its "
                                     "_CIFAR_RECIPE by this path",
}


def _line_count(path):
    with open(path, encoding="utf-8") as f:
        return len(f.read().splitlines())


def _modules():
    return sorted(str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("module", _modules())
def test_module_is_within_the_size_limit_or_allowed(module):
    lines = _line_count(ROOT / module)
    assert lines <= MAX_LINES or module in ALLOWED, (
        f"{module} has {lines} lines, over {MAX_LINES}: split it along its seams, or add it "
        f"to ALLOWED with the reason it is one cohesive thing (and to docs/architecture.md, "
        f"'Large modules')")


def test_every_allowed_module_exists_and_says_why():
    for module, reason in ALLOWED.items():
        assert (ROOT / module).is_file(), f"{module} is allowed but no longer exists"
        assert reason.strip(), module
