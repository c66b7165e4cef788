"""compat/: the version check names the modules to recheck, the releases it checks against agree
with the pins, each temporary patch is undone after its context (on an exception too), and the
package ships with the project."""

import glob
import os
import re
import runpy
import subprocess
import sys
import types

import pytest
import setuptools
from tensorflow.python.autograph.core import config as autograph_config
from tensorflow_model_analysis.metrics import calibration, calibration_histogram
from tfx.components.transform import executor as transform_executor
from tfx.components.util import tfxio_utils

import compat
from compat import autograph, tfma_combiners, tfx_evaluator, tfx_transform
from pipeline.config import PROJECT_DIR


class Failure(Exception):
    pass


def _normalized(name):
    return re.sub(r'[-_.]+', '-', name).lower()


def _pins():
    """{distribution: version} pinned exactly by setup.py and constraints.txt."""
    pins = {}
    for path in ('setup.py', 'constraints.txt'):
        with open(os.path.join(PROJECT_DIR, path)) as f:
            for name, version in re.findall(r'^\s*\'?([A-Za-z0-9_.-]+)(?:\[\w+\])?==([\w.]+)',
                                            f.read(), re.M):
                pins[_normalized(name)] = version
    return pins


def _untested(name):
    """A version of `name` outside the release its patches were tested with."""
    major, minor = compat.TESTED[name].release.split('.')[:2]
    return f'{major}.{int(minor) + 1}.0'


def test_the_installed_libraries_are_those_the_patches_were_tested_with():
    assert compat.untested_versions(compat.installed_versions()) is None
    assert set(compat.installed_versions()) == set(compat.TESTED)


@pytest.mark.parametrize('name', sorted(compat.TESTED))
def test_the_pins_are_of_the_tested_releases(name):
    """Regenerating constraints.txt (or a new pin in setup.py) onto another release fails here
    before any install does, naming the library."""
    pinned = _pins()[_normalized(name)]
    assert compat.untested_versions({name: pinned}) is None, (name, pinned)


@pytest.mark.parametrize('name', sorted(compat.TESTED))
def test_the_message_names_the_library_and_each_module_to_recheck(name):
    installed = {**compat.installed_versions(), name: _untested(name)}
    message = compat.untested_versions(installed)
    assert f'{name} {_untested(name)} is installed' in message
    for module in compat.TESTED[name].modules:
        assert module in message
    assert f'{compat.ALLOW_UNTESTED_ENV}=1' in message
    # The other libraries match: their modules are not named for them.
    assert message.count(' is installed, ') == 1


def test_a_patch_release_of_a_tested_line_passes_and_another_line_does_not():
    assert compat.TESTED['tensorflow'].release == '2.16'
    assert compat.untested_versions({'tensorflow': '2.16.9'}) is None
    assert compat.untested_versions({'tensorflow': '2.16.0rc1'}) is None
    assert compat.untested_versions({'tensorflow': '2.160.0'}) is not None
    assert 'tested with 2.16.x' in compat.untested_versions({'tensorflow': '2.17.0'})
    assert compat.TESTED['tfx'].release == '1.16.0'
    assert 'tested with 1.16.0:' in compat.untested_versions({'tfx': '1.16.1'})


def test_every_module_named_exists_and_every_compat_module_is_named():
    named = {module for tested in compat.TESTED.values() for module in tested.modules}
    for module in named:
        assert os.path.isfile(os.path.join(PROJECT_DIR, module)), module
    patches = {os.path.relpath(path, PROJECT_DIR)
               for path in glob.glob(os.path.join(PROJECT_DIR, 'compat', '*.py'))}
    assert patches - {'compat/__init__.py'} <= named


def test_the_check_raises_unless_allowed_then_warns():
    installed = {'tfx': '1.17.0'}
    with pytest.raises(compat.UntestedVersionsError, match='recheck compat/tfx_evaluator.py'):
        compat.check_versions(installed, environ={})
    with pytest.warns(RuntimeWarning, match='recheck compat/tfx_evaluator.py'):
        compat.check_versions(installed, environ={compat.ALLOW_UNTESTED_ENV: '1'})
    compat.check_versions(compat.installed_versions(), environ={})


_IMPORT_WITH_TFX_1_17 = (
    'import importlib.metadata as metadata\n'
    'real = metadata.version\n'
    'metadata.version = lambda name: "1.17.0" if name == "tfx" else real(name)\n'
    'import compat\n'
    'print("imported")\n')


def test_importing_compat_checks_the_installed_versions():
    env = {k: v for k, v in os.environ.items() if k != compat.ALLOW_UNTESTED_ENV}
    refused = subprocess.run([sys.executable, '-c', _IMPORT_WITH_TFX_1_17], cwd=PROJECT_DIR,
                             capture_output=True, text=True, timeout=120, env=env)
    assert refused.returncode != 0
    assert 'UntestedVersionsError' in refused.stderr
    assert 'tfx 1.17.0 is installed' in refused.stderr
    assert 'compat/tfx_evaluator.py, compat/tfx_transform.py' in refused.stderr
    allowed = subprocess.run([sys.executable, '-c', _IMPORT_WITH_TFX_1_17], cwd=PROJECT_DIR,
                             capture_output=True, text=True, timeout=120,
                             env={**env, compat.ALLOW_UNTESTED_ENV: '1'})
    assert allowed.returncode == 0, allowed.stderr
    assert allowed.stdout.split() == ['imported']
    assert 'RuntimeWarning' in allowed.stderr and 'tfx 1.17.0 is installed' in allowed.stderr


def test_patched_sets_for_the_context_and_restores_after_and_on_an_exception():
    target = types.SimpleNamespace(name='original')
    with compat.patched(target, 'name', 'patched'):
        assert target.name == 'patched'
    assert target.name == 'original'
    with pytest.raises(Failure), compat.patched(target, 'name', 'patched'):
        raise Failure
    assert target.name == 'original'
    with pytest.raises(AttributeError), compat.patched(target, 'absent', 'patched'):
        pass
    assert not hasattr(target, 'absent')


def test_the_evaluators_tfxio_factory_is_wrapped_for_the_context_only(monkeypatch):
    def factory_of(*args, **kwargs):
        return lambda file_pattern: ('tfxio', args, kwargs, file_pattern)

    monkeypatch.setattr(tfxio_utils, 'get_tfxio_factory_from_artifact', factory_of)
    with tfx_evaluator.tfxio_wrapped(lambda tfxio: ('wrapped', tfxio)):
        factory = tfxio_utils.get_tfxio_factory_from_artifact(['examples'], schema='s')
        assert factory('*.gz') == ('wrapped', ('tfxio', (['examples'],), {'schema': 's'},
                                               '*.gz'))
    assert tfxio_utils.get_tfxio_factory_from_artifact is factory_of
    with pytest.raises(Failure), tfx_evaluator.tfxio_wrapped(lambda tfxio: tfxio):
        assert tfxio_utils.get_tfxio_factory_from_artifact is not factory_of
        raise Failure
    assert tfxio_utils.get_tfxio_factory_from_artifact is factory_of


class _Processor(tfx_transform.TransformProcessor):
    read = staticmethod(lambda tfxio: ('read', tfxio))
    write_tfrecords = staticmethod(lambda schema, output_path: ('written', schema, output_path))


def test_the_transform_processor_is_swapped_for_the_context_only():
    original = transform_executor.TransformProcessor
    with tfx_transform.processor(_Processor):
        assert transform_executor.TransformProcessor is _Processor
    assert transform_executor.TransformProcessor is original
    with pytest.raises(Failure), tfx_transform.processor(_Processor):
        raise Failure
    assert transform_executor.TransformProcessor is original


def test_the_transform_processor_writes_tfrecords_its_way_and_other_formats_tfxs():
    processor = _Processor()
    tfrecord = transform_executor.labels.FORMAT_TFRECORD
    with tfx_transform.processor(_Processor):
        assert processor._EncodeAndWrite(schema='s', file_format=tfrecord,
                                         output_path='out') == ('written', 's', 'out')
        # TFX's own writing, although its module's name is ours meanwhile.
        other = processor._EncodeAndWrite(schema='s', file_format='parquet', output_path='out')
    assert type(other).__name__ == '_PTransformFnPTransform'


def test_tfmas_combiners_are_swapped_for_the_context_only():
    originals = (calibration_histogram._CalibrationHistogramCombiner,
                 calibration._WeightedLabelsPredictionsExamplesCombiner)
    with tfma_combiners.tfma_combiners_for_groups():
        assert issubclass(calibration_histogram._CalibrationHistogramCombiner, originals[0])
        assert calibration_histogram._CalibrationHistogramCombiner is not originals[0]
        assert issubclass(calibration._WeightedLabelsPredictionsExamplesCombiner, originals[1])
        assert calibration._WeightedLabelsPredictionsExamplesCombiner is not originals[1]
    assert (calibration_histogram._CalibrationHistogramCombiner,
            calibration._WeightedLabelsPredictionsExamplesCombiner) == originals
    with pytest.raises(Failure), tfma_combiners.tfma_combiners_for_groups():
        raise Failure
    assert (calibration_histogram._CalibrationHistogramCombiner,
            calibration._WeightedLabelsPredictionsExamplesCombiner) == originals


@pytest.mark.parametrize('module', ['tf_keras.src.engine.training', 'tensorflow_transform.mappers'])
def test_autograph_leaves_keras_2_and_tft_alone(module):
    actions = [rule.get_action(types.ModuleType(module))
               for rule in autograph_config.CONVERSION_RULES]
    decided = [action for action in actions if action != autograph_config.Action.NONE]
    assert decided[0] == autograph_config.Action.DO_NOT_CONVERT
    assert set(autograph.LIBRARIES) == {'tf_keras', 'tensorflow_transform'}


def test_the_installed_package_and_the_image_have_compat(monkeypatch):
    """The Trainer's run_fn and the executors import compat in the containers: setup.py packages
    it, and the image copies the whole project (Dockerfile: COPY . .) but .dockerignore's."""
    captured = {}
    monkeypatch.setattr(setuptools, 'setup', lambda **kwargs: captured.update(kwargs))
    monkeypatch.chdir(PROJECT_DIR)
    runpy.run_path(os.path.join(PROJECT_DIR, 'setup.py'))
    assert {'compat', 'components', 'trainer_module', 'pipeline'} <= set(captured['packages'])
    with open(os.path.join(PROJECT_DIR, '.dockerignore')) as f:
        assert 'compat' not in f.read().split()
