"""Compares two results.json files field by field (every key, in order), ignoring timings, seconds, environment and command."""
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
IGN = {"timings", "seconds", "environment", "command", "output_dir"}
diffs = []
def walk(x, y, path):
    if isinstance(x, dict) and isinstance(y, dict):
        if list(x) != list(y):
            diffs.append((path, "keys", list(x), list(y)))
        for k in x:
            if k in IGN or k not in y: continue
            walk(x[k], y[k], path + "/" + k)
    elif isinstance(x, list) and isinstance(y, list):
        if len(x) != len(y): diffs.append((path, "len")); return
        for i, (u, v) in enumerate(zip(x, y)): walk(u, v, f"{path}[{i}]")
    elif x != y:
        diffs.append((path, x, y))
walk(a, b, "")
print(len(diffs), "differences (timings, seconds, environment, command ignored)")
for d in diffs[:10]: print(d)
