"""Compares the numbers of two results.json files (issue 9 parity check)."""
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
def numbers(r):
    out = {}
    for m, c in r["clean"].items():
        out[("clean", m)] = (c["accuracy"], c["accuracy_vs_samples"], r["interrater"][m])
    for rec in r["robust"]:
        key = (rec["threat_model"], rec["attack"], rec["param"], rec["model"])
        out[key] = {k: rec.get(k) for k in ("accuracy", "accuracy_vs_samples", "interrater",
                    "attacker_accuracy", "attacker_clean_accuracy", "linf_max", "num_examples",
                    "attacked_examples", "success_rate", "l2", "l1")}
    return out
na, nb = numbers(a), numbers(b)
assert na.keys() == nb.keys(), (set(na) ^ set(nb))
diff = [k for k in na if na[k] != nb[k]]
by_tm = {}
for k in na:
    tm = k[0]
    by_tm.setdefault(tm, [0, 0])
    by_tm[tm][0] += 1
    by_tm[tm][1] += k in diff
print(f"{len(na)} entries compared; {len(diff)} differ")
for tm, (n, d) in by_tm.items():
    print(f"  {tm}: {n} entries, {d} differ")
for k in diff[:10]:
    print("DIFF", k, na[k], nb[k])
print("format_version before:", a.get("format_version"), "after:", b.get("format_version"))
