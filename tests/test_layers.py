"""The import graph of bot/ and cogs/ keeps the layers: imports point one way, nothing below a
front end imports a chat library, nothing imports a front end's client module, and no cycle,
not even through TYPE_CHECKING."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "cogs")
CHAT_LIBRARIES = ("discord", "slack_bolt", "slack_sdk")
NO_CHAT = ("bot.engine", "bot.provider", "bot.media", "bot.sim", "bot.frontends.common", "bot.ops",
           "bot.config", "bot.errors", "bot.logs", "bot.clock", "bot.units")
LEAVES = ("bot.config", "bot.errors", "bot.logs", "bot.clock", "bot.units")
CLIENTS = ("bot.frontends.discord.client", "bot.frontends.slack.app")  # built by the launcher
WIRING = ("bot.__main__", "bot.frontends.launch")  # may import every front end
# Which layer may import which: a module may import its own layer and those listed.
LAYERS: dict[str, tuple[str, ...]] = {
    "leaves": (),
    "bot.provider": ("leaves",),
    "bot.sim": ("leaves", "bot.provider.catalog"),
    "bot.media": ("leaves", "bot.provider"),
    "bot.engine": ("leaves", "bot.provider", "bot.media"),  # media never imports the engine
    "bot.ops": ("leaves", "bot.provider", "bot.engine"),  # health and metrics: launcher only
    "bot.frontends.common": ("leaves", "bot.provider", "bot.media", "bot.engine"),
    "bot.frontends.cli": ("leaves", "bot.provider", "bot.media", "bot.engine",
                          "bot.frontends.common"),
    "bot.frontends.discord": ("leaves", "bot.provider", "bot.media", "bot.engine",
                              "bot.frontends.common"),
    "bot.frontends.slack": ("leaves", "bot.provider", "bot.media", "bot.engine",
                            "bot.frontends.common"),
    "bot.frontends.launch": ("leaves", "bot.provider", "bot.engine", "bot.frontends",
                             "bot.ops"),
    "cogs": ("leaves", "bot.provider", "bot.media", "bot.engine", "bot.frontends.common",
             "bot.frontends.discord"),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of the file (TYPE_CHECKING blocks included)."""
    found: set[str] = set()
    package = module_name(path).rpartition(".")[0] if path.name != "__init__.py" \
        else module_name(path)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    """Our modules and the modules (ours or not) each imports."""
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    ours = {module_name(p) for p in files}
    edges: dict[str, set[str]] = {}
    for path in files:
        seen = imports_of(path)
        edges[module_name(path)] = {m for m in seen if m in ours or m.split(".")[0] not in
                                    PACKAGES}
    return edges


def layer_of(module: str) -> str | None:
    if module.startswith(LEAVES):
        return "leaves"
    matches = [name for name in LAYERS if module == name or module.startswith(name + ".")]
    return max(matches, key=len) if matches else None


def within(module: str, allowed: tuple[str, ...]) -> bool:
    return any(layer_of(module) == name or module == name or module.startswith(name + ".")
               for name in allowed)


def forbidden_imports(edges: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, targets in sorted(edges.items()):
        layer = layer_of(module)
        for target in sorted(targets):
            top = target.split(".")[0]
            if module.startswith(NO_CHAT) and top in CHAT_LIBRARIES:
                problems.append(f"{module} imports the chat library {target}")
            if target.startswith(CLIENTS) and module not in (*WIRING, *CLIENTS) \
                    and not module.startswith("cogs"):
                problems.append(f"{module} imports the client module {target}")
            if top not in PACKAGES or layer is None or target.startswith(module):
                continue
            if layer_of(target) != layer and not within(target, LAYERS[layer]):
                problems.append(f"{module} ({layer}) imports {target} ({layer_of(target)})")
    return problems


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle among our modules (a package's __init__ importing its own modules
    is how a package names its surface, not a cycle)."""
    ours = {m: {t for t in ts if t in edges and not _is_own_surface(m, t)}
            for m, ts in edges.items()}
    found, state = [], dict.fromkeys(ours, 0)

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in ours[node]:
            if state[nxt] == 1:
                found.append([*path[path.index(nxt):], nxt])
            elif state[nxt] == 0:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in ours:
        if state[start] == 0:
            visit(start, [start])
    return found


def _is_own_surface(module: str, target: str) -> bool:
    return target == module or target.startswith(module + ".") or module.startswith(target + ".")


def test_imports_point_one_way() -> None:
    """No layer imports one above it, and nothing below a front end imports a chat library."""
    assert forbidden_imports(graph()) == []


def test_there_is_no_import_cycle() -> None:
    """No cycle among our modules, TYPE_CHECKING imports included."""
    assert cycles(graph()) == []


def test_every_module_has_a_layer() -> None:
    """A new module lands in a known layer (or the test's table learns about it)."""
    assert [m for m in graph() if layer_of(m) is None and m not in ("bot", "bot.__main__",
                                                                      "bot.frontends")] == []


@pytest.mark.parametrize(("module", "target", "words"), [
    ("bot.engine.engine", "discord", "chat library"),
    ("bot.provider.client", "bot.engine.store", "imports bot.engine.store"),
    ("bot.frontends.discord.submit", "bot.frontends.discord.client", "client module"),
    ("bot.sim.server", "bot.media.probe", "imports bot.media.probe"),
    ("bot.media.fetch", "slack_bolt", "chat library"),
    ("bot.frontends.common.intake", "slack_sdk", "chat library"),
    ("bot.frontends.slack.command_text", "bot.frontends.discord.inputs", "imports bot.frontends"),
])
def test_a_forbidden_import_is_caught(module: str, target: str, words: str) -> None:
    """The check fails when a forbidden import is added."""
    edges = graph()
    edges[module] = {*edges[module], target}
    assert any(words in problem for problem in forbidden_imports(edges))


def test_a_cycle_is_caught() -> None:
    """The check finds a cycle when one is added, even one made by a TYPE_CHECKING import."""
    edges = graph()
    edges["bot.engine.jobs"] = {*edges["bot.engine.jobs"], "bot.engine.engine"}
    assert cycles(edges) != []
