"""The one set of lxml parser options gather reads XML with: no entity expansion, no network, no DTD, no
huge trees (against billion-laughs and XXE documents). Callers add their own layout options."""

from __future__ import annotations

from typing import Any

from lxml import etree


def hardened_parser(**options: Any) -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, **options)
