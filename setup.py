"""The MMOE TFX pipeline as an installable package: the runners and Beam workers import
`pipeline`, `components`, `trainer_module` and `compat` by module path."""

import setuptools

setuptools.setup(
    name='mmoe-tfx-pipeline',
    version='0.1.0',
    description='A TFX pipeline that trains, evaluates and ships multi-task MMOE models.',
    python_requires='>=3.10,<3.11',
    packages=setuptools.find_packages(include=['pipeline', 'pipeline.*', 'components',
                                               'components.*', 'trainer_module',
                                               'trainer_module.*', 'compat', 'compat.*']),
    install_requires=[
        'tfx[kfp]==1.16.0',
        'apache-beam[gcp]==2.59.0',
        'google-crc32c',  # TFRecord checksums of Transform's output (Beam's [gcp] brings it too)
        'matplotlib',  # the gate-weight chart
        'pyyaml',
    ],
    # pytest < 9: pytest-xdist 3.8 groups tests (--dist loadgroup) by rewriting a node id attribute
    # that pytest 9 no longer reads, so under pytest 9 every test is scheduled alone.
    # DeepCTR: the parity and drop-in tests and the throughput bench run it beside our model. 0.9.4
    # builds on TensorFlow 2.16 under Keras 2 (TF_USE_LEGACY_KERAS=1, which `trainer_module` sets);
    # it needs only requests and h5py, which TFX already brings.
    # Hypothesis: the property tests of the CSV reader and of pipeline.predict's parsing.
    # ruff and mypy: `make lint` (ruff.toml, mypy.ini), which CI runs before the tests.
    extras_require={'test': ['pytest<9', 'pytest-xdist', 'deepctr==0.9.4', 'hypothesis'],
                    'lint': ['ruff', 'mypy']},
)
