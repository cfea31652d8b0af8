"""Docs that cannot drift: every setting and every verb is documented, generated sections are current."""

from __future__ import annotations

from pathlib import Path

from digest.cli.reference import cli_reference, walk
from digest.config import SECTIONS, settings_reference

ROOT = Path(__file__).resolve().parent.parent


def test_configuration_reference_is_current() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert settings_reference() in doc, "run: python scripts/gen_config_docs.py"
    for section, model in SECTIONS.items():
        for name, field in model.model_fields.items():
            assert f"`{field.alias or name}`" in doc, f"{section}.{name} is undocumented"


def test_cli_reference_is_current() -> None:
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == cli_reference(), "run: python scripts/gen_cli_docs.py"


def test_readme_names_every_verb_and_both_setup_commands() -> None:
    from digest.cli import cli

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install -e . && digest demo" in readme and "python -m pytest" in readme
    for path, _ in walk(cli, ["digest"]):
        if len(path) >= 2:
            assert f"`{' '.join(path)}" in readme, f"{' '.join(path)} is missing from README.md"
