"""Write docs/cli.md from the commands' own --help (tests/test_docs.py fails when it is stale).

Run: python scripts/gen_cli_docs.py
"""

from pathlib import Path

from digest.cli.reference import cli_reference

doc = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
doc.write_text(cli_reference(), encoding="utf-8")
print(f"updated {doc}")
