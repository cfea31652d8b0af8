"""Rewrite the generated reference in docs/configuration.md from the settings declarations.

Run: python scripts/gen_config_docs.py   (tests/test_docs.py fails when the file is stale)
"""

from pathlib import Path

from digest.config import settings_reference

BEGIN, END = "<!-- BEGIN GENERATED SETTINGS -->", "<!-- END GENERATED SETTINGS -->"

doc = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
text = doc.read_text(encoding="utf-8")
head, rest = text.split(BEGIN, 1)
_, tail = rest.split(END, 1)
doc.write_text(f"{head}{BEGIN}\n{settings_reference()}\n{END}{tail}", encoding="utf-8")
print(f"updated {doc}")
