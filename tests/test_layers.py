"""The package layering of ``app/``: no import cycles among its packages, and the layers above the
domains (``catalog``, ``web``) are never imported by a domain."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app"
# Packages that compose the domains; a domain importing one of them would close a cycle sooner or later.
ABOVE_DOMAINS = {"catalog", "web"}
# The shared kernel: it depends on no package of the app (it may be imported by all).
KERNEL = {"lib"}
# The workers' coordination (leader election, fencing): below the domains it serves, it needs only the tables (and
# the kernel, as everything may).
CLUSTER_DEPENDS_ON = {"db", *KERNEL}


def imported_modules(path: Path) -> set[str]:
    """Every ``app.…`` module the file imports, at any depth (function-level imports count too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.startswith("app.")}


def package_of(module: str) -> str | None:
    """The top-level package of ``app`` a module belongs to (``app.chat.service`` → ``chat``), or None
    for the app's own top-level modules (``app.main``, ``app.config``…), which are outside the graph."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and (APP / parts[1]).is_dir() else None


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for path in APP.rglob("*.py"):
        module = ".".join(path.relative_to(APP.parent).with_suffix("").parts)
        source = package_of(module + ".x") if path.name != "__init__.py" else package_of(module + ".x.y")
        if source is None:
            continue
        for target in map(package_of, imported_modules(path)):
            if target is not None and target != source:
                graph[source].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path that ends where it starts, or None."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph.get(node, ())):
            if cycle := visit(target):
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        if cycle := visit(start):
            return cycle
    return None


def test_the_package_graph_is_built_from_the_sources() -> None:
    graph = package_graph()
    assert "market" in graph["catalog"]  # the query layer reads the market…
    assert "db" in graph["market"]  # …and the market its tables' base


def test_no_import_cycle_among_the_app_packages() -> None:
    assert find_cycle(package_graph()) is None


def test_find_cycle_reports_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None


@pytest.mark.parametrize("layer", sorted(ABOVE_DOMAINS))
def test_no_domain_imports_the_layers_above_it(layer: str) -> None:
    importers = {source for source, targets in package_graph().items() if layer in targets}
    assert importers <= ABOVE_DOMAINS - {layer}, f"{sorted(importers)} import {layer}"


def test_the_kernel_imports_no_package_of_the_app() -> None:
    graph = package_graph()
    assert all(not graph.get(kernel) for kernel in KERNEL), {kernel: graph.get(kernel) for kernel in KERNEL}


def test_the_cluster_package_sits_below_the_domains() -> None:
    graph = package_graph()
    assert "cluster" in graph["autoscale"]  # the autoscaler runs on the elected leader…
    assert graph.get("cluster", set()) <= CLUSTER_DEPENDS_ON  # …and the election knows no domain


def test_the_proxy_client_and_the_proxy_node_share_only_the_protocol_modules() -> None:
    """``app/proxy/client`` (the backend's side) and ``app/proxy/node`` (the server) are two programs: each imports
    the shared modules at ``app/proxy/`` (protocol, verify, registry, sse, config), never the other."""
    proxy = APP / "proxy"
    for side, other in (("client", "node"), ("node", "client")):
        for path in (proxy / side).rglob("*.py"):
            crossing = {name for name in imported_modules(path) if name.startswith(f"app.proxy.{other}")}
            assert not crossing, f"{path.relative_to(APP)} imports {sorted(crossing)}"
    for path in proxy.glob("*.py"):  # the shared modules depend on neither side (the CLI starts a node)
        sides = {name for name in imported_modules(path) if name.startswith(("app.proxy.client", "app.proxy.node"))}
        assert not sides or path.name == "cli.py", f"{path.relative_to(APP)} imports {sorted(sides)}"
