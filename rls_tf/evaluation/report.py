"""Writes an evaluation's results: ``results.json``, ``results.md``, ``robustness.png``.

* ``results.json``: everything `runner.run_evaluation` returned (every
  number, the full configuration, the defender's and attacker's paths,
  library versions, timings), plus the command line; NaN is written as null.
* ``results.md``: one small renderer per section (`SECTIONS`): the paper's layout (attack, parameter, then one column
  block per threat model holding the baseline and the RLS model), robust
  accuracy in % as mean +- std over the R repeats of the defender's draw;
  then the minimum-norm attacks' success rates and sizes, every run in
  detail (with the accuracy of the attacker's own model), interrater
  agreement, accuracy against the number of defender samples, timings and
  the notes needed to read the numbers.
* ``robustness.png``: robust accuracy against eps for PGD, one line per
  threat model and model (baseline dashed, RLS solid), eps = 0 being the
  clean accuracy; for ``apgd_rand``, which runs no PGD, its APGD line.

This module owns the order of the sections (`SECTIONS`), `markdown_report` and
`write_reports`. The table renderers are in `rls_tf.evaluation.report_tables`,
the notes, convergence and masking sections in `rls_tf.evaluation.report_notes`,
the plots in `rls_tf.evaluation.plots`.
"""

import json
import os

from rls_tf.evaluation.formatting import clean_json
from rls_tf.evaluation.formatting import percent
# The renderers and the plots live in modules of their own; this module puts the
# sections in order and writes the files. model_title and the plots are
# re-exported here, their former home.
from rls_tf.evaluation.plots import plot_convergence
from rls_tf.evaluation.plots import plot_robustness
from rls_tf.evaluation.report_notes import _render_convergence
from rls_tf.evaluation.report_notes import _render_indicators
from rls_tf.evaluation.report_notes import _render_masking
from rls_tf.evaluation.report_notes import _render_notes
from rls_tf.evaluation.report_tables import (_Context, _index, _render_defense_tables,
                                             _render_every_run, _render_header,
                                             _render_interrater, _render_main_table,
                                             _render_worst_of_r,
                                             _render_min_norm, _render_timings,
                                             _render_vs_samples, _threat_model_labels,
                                             model_title)

_clean_json = clean_json

__all__ = ["clean_json", "model_title", "percent", "markdown_report", "plot_convergence",
           "plot_robustness", "write_reports"]


# The sections of results.md, in order: one small renderer each.
SECTIONS = (_render_header, _render_main_table, _render_worst_of_r, _render_defense_tables,
            _render_masking, _render_indicators, _render_convergence, _render_min_norm,
            _render_every_run, _render_interrater, _render_vs_samples, _render_timings,
            _render_notes)


def markdown_report(results, command=None):
    """The ``results.md`` text: the `SECTIONS` one after the other."""
    config = results["config"]
    ctx = _Context(results=results, config=config, preset=config["preset"],
                   models=list(results["models"]), labels=_threat_model_labels(results),
                   index=_index(results), command=command)
    out = []
    for section in SECTIONS:
        out += section(ctx)
    return "\n".join(out)


def write_reports(results, output_dir, command=None):
    """Writes results.json, results.md and the plots; returns their paths.

    ``robustness.png`` always; ``convergence.png`` when the results hold
    convergence sweeps. results.json gains ``masking_checks``.
    """
    from rls_tf.evaluation import masking  # pylint: disable=import-outside-toplevel

    os.makedirs(output_dir, exist_ok=True)
    if command is not None:
        results = {**results, "command": command}
    paths = {
        "json": os.path.join(output_dir, "results.json"),
        "markdown": os.path.join(output_dir, "results.md"),
        "plot": os.path.join(output_dir, "robustness.png"),
    }
    if results.get("convergence"):
        paths["convergence_plot"] = os.path.join(output_dir, "convergence.png")
    results = {**results, "masking_checks": masking.summarize(masking.masking_checks(
        results, reference=results["config"].get("reference")))}
    payload = _clean_json(results)
    tmp = paths["json"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f, indent=1, allow_nan=False)
    os.replace(tmp, paths["json"])
    with open(paths["markdown"], "w", encoding="utf-8") as f:
        f.write(markdown_report(payload, command=command))
    plot_robustness(payload, paths["plot"])
    if "convergence_plot" in paths:
        plot_convergence(payload, paths["convergence_plot"])
    return paths
