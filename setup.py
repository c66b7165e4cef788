"""The MMOE TFX pipeline as an installable package: the runners and Beam workers import
`pipeline`, `components` and `trainer_module` by module path."""

import setuptools

setuptools.setup(
    name='mmoe-tfx-pipeline',
    version='0.1.0',
    description='A TFX pipeline that trains, evaluates and ships multi-task MMOE models.',
    python_requires='>=3.10,<3.11',
    packages=setuptools.find_packages(include=['pipeline', 'pipeline.*', 'components',
                                               'components.*', 'trainer_module',
                                               'trainer_module.*']),
    install_requires=[
        'tfx[kfp]==1.16.0',
        'apache-beam[gcp]==2.59.0',
        'matplotlib',  # the gate-weight chart
        'pyyaml',
    ],
    # pytest < 9: pytest-xdist 3.8 groups tests (--dist loadgroup) by rewriting a node id attribute
    # that pytest 9 no longer reads, so under pytest 9 every test is scheduled alone.
    extras_require={'test': ['pytest<9', 'pytest-xdist']},
)
