"""docs/errors.md is generated (tools/gen_errors_md.py) from CODES, the broken specs and the
limits: it must be up to date, and give every code a section with an example and a fix."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from archspec.diagnostics import CODES
from archspec.limits import LIMITS

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "errors.md"


def _generator():
    spec = importlib.util.spec_from_file_location("gen_errors_md", ROOT / "tools" /
                                                  "gen_errors_md.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_errors_md"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_errors_md_is_up_to_date():
    assert DOC.read_text(encoding="utf-8") == _generator().render(), \
        "docs/errors.md is out of date: run python tools/gen_errors_md.py"


def test_every_code_has_a_section_with_an_example_and_a_fix():
    text = DOC.read_text(encoding="utf-8")
    sections = re.split(r"^### ", text, flags=re.MULTILINE)[1:]
    by_code = {section[:4]: section for section in sections}
    assert set(by_code) == set(CODES)
    for code, section in by_code.items():
        assert section.startswith(f"{code}: {CODES[code]}\n")
        assert "**Fix:**" in section, code
        if code not in ("E501", "E502", "E503"):  # backends' own: `check` never gives them
            assert f"[{code}]: " in section and "```text\n$ archspec check" in section, code


def test_every_limit_is_in_the_table():
    text = DOC.read_text(encoding="utf-8")
    for limit in LIMITS:
        assert f"| {limit.what} | {limit.value} | [{limit.code}]" in text
