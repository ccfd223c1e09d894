#!/usr/bin/env python3
"""Checks the architecture of src/ from its `use` lines (README "How the code is laid out").

Fails when a module imports one on a higher layer or a sibling on its own layer, or when two
files import each other, directly or round a longer circle. A folder's mod.rs may name its
own files (it declares and re-exports them); any other import counts.
Run from the repository root: `python3 .ci/layers.py` (`-v` prints the graph).
"""
import re
import sys
from pathlib import Path

# Top to bottom. A module may import only modules on lower layers (and its own files).
LAYERS = [
    ["main"],
    ["commands"],
    ["cli", "startup"],
    ["http"],
    ["audit"],
    ["identity", "limits", "upstream", "auth", "sandbox"],
    ["net", "metrics", "telemetry"],
    ["verification"],
    ["phone"],
    ["config", "ids", "client_address"],
]
# Modules that may import nothing of ours at all.
ISOLATED = {"sandbox", "ids", "config", "client_address"}

SRC = Path("src")


def module_of(path: Path) -> tuple:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return tuple(parts)


def strip_comments(text: str) -> str:
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def use_paths(text: str):
    """Every path named after `use`, with braces expanded, and every inline crate:: path."""
    for statement in re.findall(r"\buse\s+([^;]+);", text):
        yield from expand(statement.replace("\n", " ").replace(" ", ""))
    for inline in re.findall(r"(?<![:\w])((?:crate|super|self)(?:::\w+)+)", text):
        yield inline


def expand(tree: str):
    if "{" not in tree:
        yield tree.split(" as ")[0]
        return
    head, rest = tree.split("{", 1)
    inner = rest[: rest.rfind("}")]
    depth, item = 0, ""
    for ch in inner + ",":
        if ch == "," and depth == 0:
            if item:
                yield from expand(head + item)
            item = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        item += ch
    return


def resolve(path: str, here: tuple, is_folder_root: bool):
    parts = [p for p in path.split("::") if p]
    if not parts or parts[0] not in ("crate", "super", "self"):
        return None
    base = list(here) if is_folder_root else list(here[:-1])
    if parts[0] == "crate":
        base, parts = [], parts[1:]
    elif parts[0] == "self":
        base, parts = list(here), parts[1:]
    while parts and parts[0] == "super":
        base = base[:-1] if is_folder_root or base != list(here[:-1]) else base
        parts = parts[1:]
        is_folder_root = True
    return tuple(base + parts)


def main() -> int:
    verbose = "-v" in sys.argv
    files = {module_of(p): p for p in SRC.rglob("*.rs") if p.name != "main.rs"}
    layer_of = {name: i for i, names in enumerate(LAYERS) for name in names}
    problems, edges = [], {}
    for module, path in sorted(files.items()):
        text = strip_comments(path.read_text())
        text = text.split("#[cfg(test)]\nmod tests")[0]
        folder_root = path.name in ("mod.rs", "lib.rs")
        targets = set()
        for named in use_paths(text):
            target = resolve(named, module, folder_root)
            if target is None:
                continue
            while target and target not in files:
                target = target[:-1]
            if not target or target == module:
                continue
            if folder_root and target[: len(module)] == module:
                continue  # a folder's mod.rs naming its own files
            targets.add(target)
        edges[module] = targets
        if not module:
            continue
        top = module[0]
        for target in targets:
            other = target[0]
            if other == top:
                continue
            if top in ISOLATED:
                problems.append(f"{path}: {top} imports {other}, but imports nothing of ours")
            elif top not in layer_of or other not in layer_of:
                problems.append(f"{path}: {top} or {other} has no layer in .ci/layers.py")
            elif layer_of[other] <= layer_of[top]:
                problems.append(f"{path}: {top} (layer {layer_of[top]}) imports {other} "
                                f"(layer {layer_of[other]}): only lower layers may be imported")
    problems += [f"import cycle: {' -> '.join(map(str, c))}" for c in cycles(edges, files)]
    if verbose:
        for module, targets in sorted(edges.items()):
            print("::".join(module) or "lib", "->", ", ".join(sorted("::".join(t) for t in targets)))
    for problem in problems:
        print(problem, file=sys.stderr)
    count = len([m for m in files if m])
    if problems:
        print(f"layers: FAIL, {len(problems)} problem(s) in {count} files", file=sys.stderr)
        return 1
    print(f"layers: OK, {count} files on {len(LAYERS)} layers, no upward import, no cycle")
    return 0


def cycles(edges, files):
    """Each strongly connected group of two or more files, as one path through it."""
    index, low, stack, on_stack, found, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append([str(files[m]) for m in sorted(group)])

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


if __name__ == "__main__":
    sys.exit(main())
