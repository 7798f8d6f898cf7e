"""Compares two results.json value by value, ignoring what may differ between runs.

Usage: python compare.py before_results.json after_results.json
Ignored keys: timings, environment, command, seconds, and what format 3 adds
(interval, format_version).
"""

import json
import sys

IGNORED = {"timings", "environment", "command", "seconds", "interval", "format_version"}


def walk(a, b, path, out, counter):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key in IGNORED:
                continue
            if key not in a or key not in b:
                out.append(f"{path}/{key}: only in {'before' if key in a else 'after'}")
                continue
            walk(a[key], b[key], f"{path}/{key}", out, counter)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} vs {len(b)} entries")
            return
        for i, (u, v) in enumerate(zip(a, b)):
            walk(u, v, f"{path}[{i}]", out, counter)
    else:
        counter[0] += 1
        if a != b:
            out.append(f"{path}: {a!r} vs {b!r}")


def main(before, after):
    with open(before, encoding="utf-8") as f:
        a = json.load(f)
    with open(after, encoding="utf-8") as f:
        b = json.load(f)
    out, counter = [], [0]
    walk(a, b, "", out, counter)
    print(f"{counter[0]} values compared, {len(out)} differ")
    for line in out[:50]:
        print(line)


if __name__ == "__main__":
    main(*sys.argv[1:3])
