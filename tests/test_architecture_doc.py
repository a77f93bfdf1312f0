"""docs/architecture.md stays true: its example code blocks run, and the files it names exist."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"


def examples():
    text = DOC.read_text()
    blocks = re.findall(r"```python\n(# example: [^\n]+)\n(.*?)```", text, flags=re.S)
    return {title.removeprefix("# example: "): code for title, code in blocks}


def test_the_page_has_its_examples():
    assert {"a layer", "a rule", "a training method"} <= set(examples())


@pytest.mark.parametrize("title", sorted(examples()))
def test_example_runs(title):
    import lfp_ref

    saved_rules = dict(lfp_ref.rules.RULES)
    saved_methods = (
        dict(getattr(lfp_ref, "methods", None).METHODS) if hasattr(lfp_ref, "methods") else None
    )
    try:
        exec(compile(examples()[title], f"architecture.md: {title}", "exec"), {})
    finally:  # registrations made by an example do not leak into other tests
        lfp_ref.rules.RULES.clear()
        lfp_ref.rules.RULES.update(saved_rules)
        if saved_methods is not None:
            lfp_ref.methods.METHODS.clear()
            lfp_ref.methods.METHODS.update(saved_methods)


def test_named_files_exist():
    text = DOC.read_text()
    for path in sorted(set(re.findall(r"`(lfp_ref/[\w/]+\.py)`", text))):
        assert (ROOT / path).exists(), path
