"""Packaging for rls-tf."""

import setuptools

setuptools.setup(
    name="rls-tf",
    version="0.1.0",
    description=(
        "Robust ensembles trained by Random Layer Sampling (Lee et al.) for "
        "Keras 3 / TensorFlow, with an adversarial evaluation harness."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # Only the library. The repo's top-level train.py, attack_eval.py and
    # export/ are shims for running from a checkout; installed as top-level
    # modules they would clash with other packages of those names. The
    # commands are installed as console scripts instead.
    packages=setuptools.find_packages(include=["rls_tf", "rls_tf.*"], exclude=["export", "tests"]),
    entry_points={
        "console_scripts": [
            "rls-train=rls_tf.cli.train:run",
            "rls-export=rls_tf.cli.export:run",
            "rls-attack-eval=rls_tf.cli.attack_eval:run",
            "rls-reproduce=rls_tf.cli.reproduce:run",
        ],
    },
    python_requires=">=3.10,<3.14",
    install_requires=[
        # CPU wheels by default; a GPU user installs `tensorflow[and-cuda]`
        # in the same range instead (see README).
        "tensorflow-cpu>=2.20,<2.22",
        "keras>=3.12,<3.16",
        "tensorflow-datasets>=4.9.8,<5",
        "cleverhans>=4.0,<5",
        "numpy>=1.26,<3",
        "scipy>=1.11,<2",
        "absl-py>=2.1,<3",
        # TensorBoard logs (tensorflow-cpu no longer pulls it in).
        "tensorboard>=2.20,<2.22",
        # tensorflow-datasets needs it (through etils[epath]) to download.
        "importlib_resources>=6",
        # DeepFool, Carlini-Wagner L2 and EAD in rls_tf.attacks.
        "foolbox>=3.3.4,<4",
        # attack_eval.py's robustness.png (rls_tf.evaluation.report).
        "matplotlib>=3.7,<4",
    ],
    extras_require={
        # ai-edge-litert: the standalone TFLite interpreter the export tests
        # run (tensorflow-serving-api, for the PredictRequest test, is
        # installed with --no-deps: it requires `tensorflow`, which would
        # clash with tensorflow-cpu; see .ci/run).
        "dev": ["pytest>=8,<10", "pytest-xdist>=3.5,<4", "ai-edge-litert>=2.0,<3"],
        # The documentation site (mkdocs.yml): the guides under docs/ and the API
        # reference generated from the docstrings; `mkdocs build --strict`, .ci/docs.
        "docs": ["mkdocs>=1.6,<2", "mkdocstrings[python]>=0.26", "pymdown-extensions>=10"],
    },
)
