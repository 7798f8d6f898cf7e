"""The evaluation's plots: ``robustness.png`` and ``convergence.png``.

`plot_robustness` draws robust accuracy against eps (PGD, or APGD for
``apgd_rand``), one line per threat model and model; `plot_convergence` the
accuracy against steps, draws and eps of the convergence sweeps. matplotlib is
imported inside each function (Agg backend), so importing this module needs no
display and no matplotlib.
"""

import numpy as np

from rls_tf.evaluation.report_notes import _SWEEP_TITLES
from rls_tf.evaluation.report_tables import _title

__all__ = ["plot_convergence", "plot_robustness"]

def plot_robustness(results, path):
    """Saves robust accuracy against eps for PGD (one line per threat model x model).

    A threat model without PGD results (``apgd_rand``) gets its APGD line.
    Error bars: the 95% interval over the images where the results carry it
    (format 3; with a dotted worst-of-R line for a defender with R > 1
    repeats), else the std over the repeats.
    """
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    preset = results["config"]["preset"]
    labels = [t["label"] for t in results["config"]["threat_models"]]
    models = list(results["models"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = ["--", "-", ":", "-."]
    # A marker per model as well: line styles alone repeat after four models.
    markers = ["o", "s", "^", "D", "v", "P", "X", "*"]
    plotted = False
    for i, label in enumerate(labels):
        for j, m in enumerate(models):
            # PGD; APGD where the threat model has no PGD (apgd_rand).
            for attack in ("pgd", "apgd"):
                records = sorted(
                    (r for r in results["robust"]
                     if r["attack"] == attack and r["threat_model"] == label and r["model"] == m),
                    key=lambda r: r["eps"],
                )
                if records:
                    break
            if not records:
                continue
            clean = results["clean"][m]["accuracy"]
            eps = [0.0] + [r["eps"] for r in records]
            mean = [clean["mean"]] + [r["accuracy"]["mean"] for r in records]
            entries = [results["clean"][m]] + records
            if all(e.get("interval") for e in entries):
                # Format 3: the 95% interval over the images (asymmetric).
                # Clipped at 0: intervals written before wilson_interval clamped
                # them may miss a mean of 0 or 1 by a rounding error.
                yerr = np.maximum(0.0, [
                    [mu - e["interval"]["low"] for mu, e in zip(mean, entries)],
                    [e["interval"]["high"] - mu for mu, e in zip(mean, entries)]])
            else:
                yerr = [clean["std"] or 0.0] + [r["accuracy"]["std"] or 0.0 for r in records]
            color = colors[i % len(colors)]
            ax.errorbar(eps, 100 * np.asarray(mean), yerr=100 * np.asarray(yerr),
                        color=color, linestyle=styles[j % len(styles)],
                        marker=markers[j % len(markers)], capsize=3,
                        label=f"{_title(m)}, {label}" + (" (APGD)" if attack == "apgd" else ""))
            if all((e.get("interval") or {}).get("repeats", 1) > 1 for e in entries):
                ax.plot(eps, [100 * e["interval"]["worst_of_r"] for e in entries], color=color,
                        linestyle=":", linewidth=1, alpha=0.7,
                        label=f"{_title(m)}, {label}, worst-of-R")
            plotted = True
    if not plotted:
        ax.text(0.5, 0.5, "no PGD results", ha="center", va="center", transform=ax.transAxes)
    unit = "[-1, 1] pixel units" if preset["eps_units"] == "model" else "[0, 1] units (x2 applied)"
    ax.set_xlabel(f"eps (L-inf, {unit})")
    ax.set_ylabel("accuracy under attack (%)")
    ax.set_ylim(0, 100)
    dataset = results.get("data", {}).get("dataset", preset.get("dataset"))
    ax.set_title(f"{dataset}: accuracy under PGD (APGD for apgd_rand) against eps, "
                 f"by threat model (N={results['config']['eval_samples']})", fontsize=10)
    ax.grid(alpha=0.3)
    if plotted:
        entries = len(ax.get_legend_handles_labels()[1])
        if entries > 8:  # beside the axes: inside, it would hide the curves
            columns = (entries - 1) // 24 + 1
            fig.set_size_inches(7 + 2.5 * columns, 4.5)
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=columns)
        else:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_convergence(results, path):
    """Saves accuracy against steps, draws and eps (one line per model)."""
    import matplotlib  # pylint: disable=import-outside-toplevel

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

    records = results.get("convergence") or []
    sweeps = [s for s in ("steps", "draws", "eps") if any(r["sweep"] == s for r in records)]
    fig, axes = plt.subplots(1, max(1, len(sweeps)), figsize=(4.2 * max(1, len(sweeps)), 3.8),
                             squeeze=False)
    for ax, sweep in zip(axes[0], sweeps):
        for m in results["models"]:
            rows = sorted((r for r in records if r["sweep"] == sweep and r["model"] == m),
                          key=lambda r: r["value"])
            if not rows:
                continue
            ax.errorbar([r["value"] for r in rows],
                        [100 * r["accuracy"]["mean"] for r in rows],
                        yerr=[100 * (r["accuracy"]["std"] or 0.0) for r in rows],
                        marker="o", capsize=3, label=_title(m))
        if sweep != "eps":
            ax.set_xscale("log")
        ax.set_xlabel(_SWEEP_TITLES[sweep])
        ax.set_ylabel("accuracy under EOT PGD (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Convergence of the adaptive attack", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
