#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""No circles among the agent's files (TAP).

1. Includes: no header of agent/ includes, through any chain, itself.
   Headers are included by bare name (the Makefile adds -I for each part),
   so a name is looked up beside the includer, then in every folder.
2. Calls: no object of agent/ uses, through any chain, a symbol of its own:
   file A defines X that B uses while B defines Y that A uses, and longer
   rings alike. Read from `nm` of the objects `make` built (BUILD, default
   build/), so run it after make.

Each circle is printed with the edge that closes it.

    scripts/check-cycles.py [BUILD]
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, sys.argv[1] if len(sys.argv) > 1 else "build")
# Object folders under BUILD and the source folders they are built from.
OBJ_DIRS = {"agent": "agent", "lib": "agent/lib", "ctl": "agent/ctl",
            "milter": "agent/milter"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources():
    out = []
    for d, _, names in os.walk(os.path.join(ROOT, "agent")):
        out += [os.path.relpath(os.path.join(d, n), ROOT) for n in names
                if n.endswith((".c", ".h"))]
    return sorted(out)


def include_graph(files):
    headers = {}
    for f in files:
        if f.endswith(".h"):
            headers.setdefault(os.path.basename(f), []).append(f)
    graph = {}
    for f in files:
        if not f.endswith(".h"):
            continue
        with open(os.path.join(ROOT, f), encoding="utf-8") as fp:
            text = fp.read()
        edges = graph.setdefault(f, {})
        for name in INCLUDE.findall(text):
            beside = os.path.normpath(os.path.join(os.path.dirname(f), name))
            targets = [beside] if os.path.exists(os.path.join(ROOT, beside)) \
                else headers.get(os.path.basename(name), [])
            for t in targets:
                if t != f and t.endswith(".h"):
                    edges[t] = "includes " + name
    return graph


def nm(path):
    res = subprocess.run(["nm", path], capture_output=True, text=True, check=True)
    defined, used = set(), set()
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            used.add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDBRGV":
            defined.add(parts[2])
    return defined, used


def call_graph():
    defs, uses = {}, {}
    for obj_dir, src_dir in OBJ_DIRS.items():
        top = os.path.join(BUILD, obj_dir)
        for d, _, names in os.walk(top):
            for n in names:
                if not n.endswith(".o"):
                    continue
                rel = os.path.relpath(os.path.join(d, n), top)[:-2] + ".c"
                src = os.path.join(src_dir, rel)
                if not os.path.exists(os.path.join(ROOT, src)):
                    continue	# an object of another tree (san/, fuzzobj/)
                defined, used = nm(os.path.join(d, n))
                uses[src] = used
                for sym in defined:
                    defs.setdefault(sym, []).append(src)
    graph = {}
    for src, used in uses.items():
        edges = graph.setdefault(src, {})
        for sym in sorted(used):
            for t in defs.get(sym, []):
                if t != src and t not in edges:
                    edges[t] = "uses " + sym
    return graph


def circles(graph):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def report(n, what, graph, nodes):
    found = circles(graph)
    if not nodes:
        print(f"not ok {n} - {what}: nothing to check (run make first)")
        return False
    if not found:
        print(f"ok {n} - {what} ({nodes} files)")
        return True
    print(f"not ok {n} - {what}: {len(found)} circle(s)")
    for comp in found:
        print("#   circle: " + " ".join(comp))
        for a in comp:
            for b, why in sorted(graph[a].items()):
                if b in comp:
                    print(f"#     {a} -> {b} ({why})")
    return False


def main():
    inc = include_graph(sources())
    calls = call_graph()
    print("1..2")
    ok = report(1, "no include circle among agent/ headers", inc, len(inc))
    ok = report(2, "no call circle among agent/ objects", calls, len(calls)) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
