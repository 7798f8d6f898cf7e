"""Per-image worst case: an image is robust only if it survives every attack of a group.

Reads the committed shard files (no model needed); run from the repository root:
    python docs/reproduction/cifar10_at_blackbox/probes/per_image.py
Session s31 printed (8/255, defender N=10; rls_at per defender repeat, then the mean):
    blackbox_plain_at: white-box 25.8, all four 25.2
    blackbox_rls_at: white-box 32.2/32.4/30.6 (mean 31.7), all four 31.6/31.8/30.2 (31.2)
and for the cpu suite's first 100 images (cifar10 stage shards 0-1, 8/255), the lowest
single loss attack per model: plain_at 25.0, rls_at 34.0, rse 14.7 (see the cpu NOTES).
"""
import glob
import json
import os

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CPU = os.path.join(os.path.dirname(HERE), "cpu")
EPS_8 = 2 * 8 / 255


def bits(paths, keep=lambda record: True):
    """{(model, threat model, attack): [per-repeat '0'/'1' strings over the shards]}."""
    out = {}
    for path in sorted(paths, key=lambda p: int(os.path.basename(p).split("-")[1])):
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
        n = str(payload["config"]["eval_samples"])
        for record in payload["robust"]:
            if not keep(record):
                continue
            key = (record["model"], record["threat_model"], record["attack"])
            correct = record["examples"]["correct"]
            # An ensemble's defender draws its members, not N.
            parts = correct[n] if n in correct else correct[max(correct, key=int)]
            joined = out.setdefault(key, [""] * len(parts))
            for i, part in enumerate(parts):
                joined[i] += part
    return out


def robust_to_all(strings):
    """Per repeat, the % of images every string calls correct."""
    return [round(100 * sum(all(s[i][j] == "1" for s in strings) for j in range(len(strings[0][i])))
                  / len(strings[0][i]), 1) for i in range(len(strings[0]))]


for stage in ("blackbox_plain_at", "blackbox_rls_at"):
    found = bits(glob.glob(os.path.join(HERE, "eval", stage, "shard-*-of-*.json")))
    white = [v for k, v in found.items() if k[2] in ("pgd", "apgd")]
    print(f"{stage}: white-box {robust_to_all(white)}, all four {robust_to_all(list(found.values()))}")

first = bits([os.path.join(CPU, "eval", "cifar10", f"shard-{i}-of-10.json") for i in (0, 1)],
             keep=lambda r: abs((r.get("eps") or 0) - EPS_8) < 1e-6)
for model in ("plain_at", "rls_at", "rse"):
    lowest = min((sum(robust_to_all([v])) / len(v), k) for k, v in first.items() if k[0] == model)
    print(f"cpu suite, first 100 images, {model}: lowest single attack {lowest[0]:.1f} ({lowest[1][1]} {lowest[1][2]})")
