#!/usr/bin/env python3
"""deps.py: the include graph of the sources, checked against the layering
rule of README "Architecture" (make deps).

Every #include "..." of every C, CUDA and header file under include/, src/,
kernels/ and tools/ is resolved the way the compiler does with the Makefile's
include paths: beside the including file first, then by the header's name
(header names are unique in the tree; a clash is reported). It prints, per
folder, the folders it includes from, and fails (exit 1) when a folder
includes from one the rule does not allow, or when the graph has a cycle:
between folders, or between files (a file that includes its includer).
Benchmarks and tests may include anything and are left out."""
import os
import re
import sys
from collections import defaultdict

# What each folder may include from, besides itself (README "Architecture").
ALLOWED = {
    "include": set(),
    "kernels": set(),
    "src/core": {"include", "kernels"},
    "src/text": {"include", "kernels", "src/core"},
    "src/vision": {"include", "kernels", "src/core"},
    "src/vit": {"include", "kernels", "src/core", "src/text", "src/vision"},
    "src/cuda": {"include", "kernels", "src/core", "src/text"},
    "src/serve": {"include"},
    "tools/cli": {"include"},
    "tools/serve": {"include"},
    "tools/convert": {"include", "kernels", "src/core", "src/text", "src/vision"},
}
EXTS = (".c", ".h", ".cu")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.chdir(root)
    files = []
    for top in ("include", "src", "kernels", "tools"):
        for d, _, names in os.walk(top):
            files += [os.path.join(d, n) for n in sorted(names) if n.endswith(EXTS)]
    by_name = defaultdict(list)
    for f in files:
        by_name[os.path.basename(f)].append(f)
    problems = []
    for name, paths in sorted(by_name.items()):
        if name.endswith(".h") and len(paths) > 1:
            problems.append("header name used twice: " + ", ".join(paths))

    def folder(path):
        d = os.path.dirname(path)
        return d if d in ALLOWED else None

    edges = defaultdict(set)          # file -> files it includes
    folder_edges = defaultdict(set)   # folder -> folders it includes from
    for f in files:
        if folder(f) is None:
            problems.append("%s: its folder is not in the rule" % f)
            continue
        with open(f, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        for inc in INCLUDE.findall(text):
            beside = os.path.normpath(os.path.join(os.path.dirname(f), inc))
            if os.path.exists(beside):
                target = beside
            elif len(by_name.get(os.path.basename(inc), [])) == 1:
                target = by_name[os.path.basename(inc)][0]
            else:
                problems.append('%s: #include "%s" resolves to no file of the tree' % (f, inc))
                continue
            edges[f].add(target)
            src, dst = folder(f), folder(target)
            if dst and dst != src:
                folder_edges[src].add(dst)
                if dst not in ALLOWED[src]:
                    problems.append('%s includes %s: %s may not include from %s'
                                    % (f, target, src, dst))

    def cycles(graph):
        """Every node on a cycle, found by depth-first search."""
        state, stack, found = {}, [], []

        def visit(n):
            state[n] = 1
            stack.append(n)
            for m in sorted(graph.get(n, ())):
                if state.get(m) == 1:
                    found.append(stack[stack.index(m):] + [m])
                elif m not in state:
                    visit(m)
            stack.pop()
            state[n] = 2

        for n in sorted(graph):
            if n not in state:
                visit(n)
        return found

    for c in cycles(folder_edges):
        problems.append("folder cycle: " + " -> ".join(c))
    for c in cycles(edges):
        problems.append("file cycle: " + " -> ".join(c))

    print("folder -> folders it includes from (%d files, %d includes resolved)"
          % (len(files), sum(len(v) for v in edges.values())))
    for src in ALLOWED:
        print("  %-14s -> %s" % (src, ", ".join(sorted(folder_edges.get(src, ()))) or "-"))
    if problems:
        print("\n".join("FAIL: " + p for p in problems))
        return 1
    print("no cycles between folders or files; every include follows the rule")
    return 0


if __name__ == "__main__":
    sys.exit(main())
