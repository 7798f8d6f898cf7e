"""What an evaluation runs (`EvalConfig`), its seeds and its recorded environment.

Everything random in an evaluation is seeded by `derive_seed` from the
config's seed and labels naming what it is for (the model, the threat model,
the attack, the batch), never from the order things run in.
"""

import dataclasses
import platform
import sys
import zlib
from typing import Mapping, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from rls_tf.attacks.registry import get_attack
from rls_tf.evaluation import threat_models as tm_lib
from rls_tf.evaluation.presets import Preset
from rls_tf.validation import check_int
from rls_tf.validation import check_seed

__all__ = ["DEFAULT_SAMPLE_COUNTS", "EvalConfig", "check_data", "cpu_model", "derive_seed",
           "environment_info"]

DEFAULT_SAMPLE_COUNTS = (1, 3, 5, 10, 15)


def derive_seed(seed, *keys):
    """A reproducible seed in [0, 2**31) from a base seed and some labels."""
    text = "/".join([str(seed)] + [str(k) for k in keys])
    return zlib.crc32(text.encode("utf-8")) & 0x7FFFFFFF


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """What `run_evaluation` runs.

    Attributes:
        attacks: attack names (registry names, `rls_tf.attacks.ATTACK_NAMES`).
        threat_models: threat-model names (subset of
            `threat_models.THREAT_MODELS`).
        preset: the attack parameters.
        eval_samples: N, the defender's sampled models.
        repeats: R, repeats of the defender's draw.
        sample_counts: the N values of the accuracy-against-N table.
        batch_size: examples per attack batch (an EOT batch runs E times as
            many rows through the network).
        seed: base seed of everything random (paths, random starts, TF).
        verbose: 0 silent, 1 progress bars and a line per run.
        surrogates: the surrogates of the ``transfer`` threat model, one
            entry per transfer run: model keys joined by ``+`` (an ensemble
            of surrogates); ``copy`` names the evaluated defense's own
            independently trained copy (``surrogate_models`` of the run).
        convergence: also run the convergence sweeps (EOT PGD against
            steps, draws and eps; see the preset's ``convergence_*``).
        reference: key of the undefended model the masking checks compare
            with (None: ``plain`` or ``baseline`` if present).
        threat_model_attacks: ``{threat model: attacks}``: a threat model
            named here runs only these of `attacks` (the others: every attack
            of `attacks` it admits). Keeps a long evaluation to the pairs it
            needs, e.g. APGD under ``apgd_rand`` only, FGSM and PGD under
            ``paper`` and ``eot``.
    """

    attacks: Tuple[str, ...]
    threat_models: Tuple[str, ...]
    preset: Preset
    eval_samples: int = 10
    repeats: int = 5
    sample_counts: Tuple[int, ...] = DEFAULT_SAMPLE_COUNTS
    batch_size: int = 100
    seed: int = 0
    verbose: int = 1
    surrogates: Tuple[str, ...] = ("plain",)
    convergence: bool = False
    reference: Optional[str] = None
    threat_model_attacks: Optional[Mapping[str, Tuple[str, ...]]] = None

    def __post_init__(self):
        object.__setattr__(self, "attacks", tuple(self.attacks))
        self._check_threat_model_attacks()
        object.__setattr__(self, "surrogates", tuple(str(s) for s in self.surrogates))
        object.__setattr__(self, "threat_models", tuple(self.threat_models))
        for name in self.threat_models:
            tm_lib.get_threat_model(name)
        if self.uses_surrogates and (
                not self.surrogates or any(not part for spec in self.surrogates
                                           for part in spec.split("+"))):
            raise ValueError("The transfer threat model needs surrogates (model keys joined by "
                             f"'+', or 'copy'). Received: surrogates={self.surrogates!r}")
        object.__setattr__(self, "sample_counts", tuple(int(n) for n in self.sample_counts))
        if not self.attacks:
            raise ValueError("At least one attack is needed. Received: attacks=()")
        for name in self.attacks:
            get_attack(name)
        if not self.threat_models:
            raise ValueError("At least one threat model is needed. Received: threat_models=()")
        if not isinstance(self.preset, Preset):
            raise ValueError(f"`preset` must be a Preset. Received: preset={self.preset!r}")
        for name in ("eval_samples", "repeats", "batch_size"):
            check_int(name, getattr(self, name))
        if not self.sample_counts or min(self.sample_counts) < 1:
            raise ValueError(
                f"`sample_counts` must be ints >= 1. Received: sample_counts={self.sample_counts!r}"
            )
        check_seed("seed", self.seed, allow_none=False)

    def _check_threat_model_attacks(self):
        pairs = self.threat_model_attacks
        if pairs is None:
            return
        if not isinstance(pairs, Mapping):
            raise ValueError("`threat_model_attacks` must map threat-model names to attack "
                             f"names. Received: threat_model_attacks={pairs!r}")
        checked = {}
        for name, attacks in pairs.items():
            if name not in self.threat_models:
                raise ValueError(
                    f"`threat_model_attacks` names a threat model that is not run. Received: "
                    f"threat_model_attacks[{name!r}], threat_models={tuple(self.threat_models)}")
            attacks = (attacks,) if isinstance(attacks, str) else tuple(attacks)
            unknown = [a for a in attacks if a not in self.attacks]
            if not attacks or unknown:
                raise ValueError(
                    f"`threat_model_attacks[{name!r}]` must be a non-empty subset of `attacks` "
                    f"{self.attacks}. Received: {attacks!r}")
            checked[str(name)] = tuple(dict.fromkeys(attacks))
        object.__setattr__(self, "threat_model_attacks", checked)

    def attacks_under(self, threat_model_name):
        """The attacks run under a threat model (`threat_model_attacks`, else `attacks`)."""
        pairs = self.threat_model_attacks or {}
        return pairs.get(threat_model_name, self.attacks)

    @property
    def uses_surrogates(self):
        """Whether a requested threat model crafts on surrogates (``transfer``)."""
        return any(tm_lib.get_threat_model(name).crafted_on_surrogate
                   for name in self.threat_models)

    def threat_model_grid(self):
        return tm_lib.threat_model_grid(
            self.threat_models,
            multi_sample_paths=self.preset.multi_sample_paths,
            eot_samples=self.preset.eot_samples,
            surrogates=self.surrogates,
            arc_paths=self.preset.arc_paths,
        )

    def to_json(self):
        return {
            "attacks": list(self.attacks),
            "threat_models": [t.to_json() for t in self.threat_model_grid()],
            "preset": self.preset.to_json(),
            "eval_samples": self.eval_samples,
            "repeats": self.repeats,
            "sample_counts": list(self.sample_counts),
            "batch_size": self.batch_size,
            "seed": self.seed,
            **({"surrogates": list(self.surrogates)} if self.uses_surrogates else {}),
            **({"convergence": True} if self.convergence else {}),
            **({"reference": self.reference} if self.reference else {}),
            **({"threat_model_attacks": {k: list(v) for k, v in
                                         self.threat_model_attacks.items()}}
               if self.threat_model_attacks else {}),
        }


def check_data(x, y):
    """Validates float images in [-1, 1] and int labels; returns them as float32/int64."""
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 4 or not np.issubdtype(x.dtype, np.floating):
        raise ValueError(
            f"`x` must be float images [B, H, W, C] in [-1, 1]. Received: x.shape={x.shape}, "
            f"dtype={x.dtype}"
        )
    if x.size and (x.min() < -1 - 1e-6 or x.max() > 1 + 1e-6):
        raise ValueError(
            f"`x` must be in [-1, 1] (rls_tf.data.to_model_range). Received: min={x.min()}, "
            f"max={x.max()}"
        )
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"`y` must be int labels [B] = [{len(x)}]. Received: y.shape={y.shape}, dtype={y.dtype}"
        )
    if len(x) == 0:
        raise ValueError("At least one example is needed. Received: 0 examples")
    return np.clip(x.astype(np.float32), -1.0, 1.0), y.astype(np.int64)


def cpu_model(path="/proc/cpuinfo"):
    """The CPU's model name (Linux ``/proc/cpuinfo``), else `platform.processor()` or None.

    Recorded because seeded training repeats bit for bit on one kind of CPU
    but not across kinds (likely because TF's CPU kernels follow the
    instruction set):
    shards and parts of a combined report made on different CPUs may hold
    models of different weights, and the record says where each came from.

    Example:
        >>> cpu_model("/no/such/file") in (None, platform.processor())
        True
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def environment_info():
    """Library versions and machine facts recorded with every result."""
    from importlib import metadata  # pylint: disable=import-outside-toplevel

    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in ("rls-tf", "tensorflow", "tensorflow-cpu", "keras", "numpy",
                    "cleverhans", "foolbox", "eagerpy", "scipy", "matplotlib", "absl-py"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    versions["tf.__version__"] = tf.__version__
    versions["keras.__version__"] = keras.__version__
    try:
        import os  # pylint: disable=import-outside-toplevel

        versions["cpu_count"] = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        pass
    model = cpu_model()
    if model:
        versions["cpu_model"] = model
    versions["gpus"] = [d.name for d in tf.config.list_physical_devices("GPU")]
    return versions
