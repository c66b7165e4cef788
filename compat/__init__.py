"""Every patch of, and subclass over, a private internal of TFX, TFMA, TFT, Beam or TensorFlow.

The project makes TFX's components faster by reaching into code that those libraries do not
offer as an API: names that an executor looks up in its module at run time, private classes and
methods. Each module here holds the patches of one library's internals, each with why it is
needed and the upstream change that would let it go:
- tfx_evaluator.py: the TFXIO factory that TFX's Evaluator reads its examples through;
- tfx_transform.py: TFX's Transform processor, its reading and its TFRecord writing;
- tfx_statistics_gen.py: the TFXIO factory that TFX's StatisticsGen reads each split through;
- tfma_combiners.py: TFMA's combiners behind the calibration histogram and the weighted sums;
- beam_tfrecord.py: Beam's TFRecord sink, given a batch of records at a time;
- autograph.py: TensorFlow's autograph, told to leave Keras 2 and TFT alone.

Those internals can change in any release, silently: a patch may then no longer take effect, or
compute something else. So importing this package checks the installed libraries against
`TESTED`, the releases these patches were written and tested against, and refuses to go on
(`UntestedVersionsError`) naming the modules to recheck, unless ALLOW_UNTESTED_ENV is set to 1:
then it warns. Refusing is the default because a patch that silently stopped working shows up,
if at all, as slower components or different metrics far from its cause, and in a Beam worker's
or a container's log a warning is easily missed; someone upgrading on purpose sets the variable
while they recheck the named modules.

A temporary patch is a `patched` context: a name set in a module for the duration of one
executor's run, restored afterwards, whatever happens.

compat imports the libraries it patches and, where a patch computes with the project's own code,
components/ (tfma_combiners.py); never pipeline/. `autograph`, which trainer_module imports,
imports neither.
"""

import contextlib
import importlib.metadata
import os
import re
import warnings
from typing import Any, Dict, Iterator, List, Mapping, NamedTuple, Optional, Sequence

import trainer_module  # noqa: F401  (the Keras choice: see trainer_module/__init__.py)

ALLOW_UNTESTED_ENV = 'MMOE_ALLOW_UNTESTED_VERSIONS'


class Tested(NamedTuple):
    """A library's release that the patches were tested against (all of a release line where it
    is shorter, '2.16' for any 2.16.x), and the modules that patch or read its internals."""
    release: str
    modules: Sequence[str]


# The releases the patches were written and tested against, by distribution name. This is not
# where the versions are pinned (setup.py pins TFX and Beam, constraints.txt everything else):
# a pin says what is installed, this says what the patches are known to work with, and
# tests/test_compat.py checks that the two agree. Exact where setup.py pins an exact version;
# a release line where only TFX 1.16's own requirements bound it, because the container image
# (Dockerfile) installs without constraints.txt and may hold another patch release of that line.
# Three modules outside compat/ read private internals too, and are named so that an upgrade
# rechecks them: components/batched_records.py (tfx_bsl's TFExampleRecord: its private
# `_ProjectImpl`, `_file_pattern`, `_schema`), components/statistics_gen.py (the same, and the
# RecordBatch tfx_bsl's decoder gives without a schema) and components/atomic_pusher.py
# (TensorFlow's private `loader_impl.parse_saved_model`).
TESTED: Dict[str, Tested] = {
    'tfx': Tested('1.16.0', ('compat/tfx_evaluator.py', 'compat/tfx_transform.py',
                             'compat/tfx_statistics_gen.py')),
    'tensorflow-transform': Tested('1.16', ('compat/tfx_transform.py', 'compat/autograph.py')),
    'tensorflow-model-analysis': Tested('0.47', ('compat/tfma_combiners.py',)),
    'apache-beam': Tested('2.59.0', ('compat/beam_tfrecord.py',)),
    'tensorflow': Tested('2.16', ('compat/autograph.py', 'components/atomic_pusher.py')),
    'tfx-bsl': Tested('1.16', ('components/batched_records.py', 'components/statistics_gen.py')),
}


class UntestedVersionsError(RuntimeError):
    """An installed library is of another release than the patches of its internals were tested
    against; the message names the modules to recheck and how to go on regardless."""


def _in_release(installed: str, release: str) -> bool:
    """Whether version `installed` ('2.16.2', '2.16.2rc0', '1.16.0+local') is `release` or, for
    a shorter `release` ('2.16'), of its line."""
    numbers = re.match(r'\d+(?:\.\d+)*', installed)
    wanted = release.split('.')
    return numbers is not None and numbers.group().split('.')[:len(wanted)] == wanted


def installed_versions() -> Dict[str, str]:
    """{distribution: installed version} of the libraries in `TESTED` that are installed. One that
    is absent (or installed under another distribution name, such as tensorflow-cpu) is left
    out: there is no version to check."""
    versions = {}
    for name in TESTED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def untested_versions(installed: Mapping[str, str]) -> Optional[str]:
    """What is wrong with `installed` ({distribution: version}) against `TESTED`, as a message
    naming each library, both versions and the modules to recheck; None when all match."""
    lines: List[str] = []
    for name, tested in TESTED.items():
        version = installed.get(name)
        if version is not None and not _in_release(version, tested.release):
            lines.append(f'  {name} {version} is installed, the patches were tested with '
                         f'{tested.release}{".x" if tested.release.count(".") == 1 else ""}: '
                         f'recheck {", ".join(tested.modules)}')
    if not lines:
        return None
    return ('The project patches private internals of these libraries, and the installed '
            'versions differ from those the patches were tested against:\n' + '\n'.join(lines)
            + '\nEach module says what it patches, why, and what upstream change would let it '
            'go. Recheck them (then update compat.TESTED and the pins in setup.py and '
            f'constraints.txt), or set {ALLOW_UNTESTED_ENV}=1 to run regardless, with a warning.')


def check_versions(installed: Optional[Mapping[str, str]] = None,
                   environ: Mapping[str, str] = os.environ) -> None:
    """Raises UntestedVersionsError if `installed` (default: what is installed) differs from
    `TESTED`, or only warns where `environ` sets ALLOW_UNTESTED_ENV to 1."""
    problem = untested_versions(installed_versions() if installed is None else installed)
    if problem is None:
        return
    if environ.get(ALLOW_UNTESTED_ENV) == '1':
        warnings.warn(problem, RuntimeWarning, stacklevel=2)
    else:
        raise UntestedVersionsError(problem)


@contextlib.contextmanager
def patched(target: Any, name: str, value: Any) -> Iterator[None]:
    """While it lasts, `target.name` (a module's or a class's attribute, which must exist) is
    `value`; afterwards, on an exception too, it is what it was."""
    original = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, original)


check_versions()
