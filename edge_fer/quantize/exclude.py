"""``--exclude``: node names or op types to keep float, resolved against a graph's nodes."""

from __future__ import annotations

from collections.abc import Sequence

from edge_fer.artifacts.errors import EdgeFerError


def resolve_exclude(names: Sequence[str], nodes: Sequence[tuple[str, str]], aliases: dict[str, str] | None = None
                    ) -> list[str]:
    """Node names for ``--exclude`` entries, each a node name or an op type (``Conv``); unknown -> error."""
    aliases = aliases or {}
    by_type: dict[str, list[str]] = {}
    for name, op in nodes:
        by_type.setdefault(op, []).append(name)
    known = {n for n, _ in nodes}
    out: list[str] = []
    for entry in names:
        if entry in known:
            out.append(entry)
        elif aliases.get(entry, entry) in by_type:
            out.extend(by_type[aliases.get(entry, entry)])
        else:
            raise EdgeFerError(f"--exclude {entry!r}: no node or op type of that name in the model "
                               f"(op types: {', '.join(sorted(by_type))})")
    return list(dict.fromkeys(out))
