"""Where the Trainer's time goes outside its training steps, and its peak memory.

    .venv/bin/python bench/trainer_phases.py RUN_DIR [--rounds 2] [--against CHECKOUT]
        [--train-copies 1] [--set KEY=VALUE ...]

RUN_DIR is a `local_runner.py --output` directory whose Transform ran. Each round runs the
Trainer's `run_fn` on that Transform output, in a process of its own, with the config's defaults
and the --set assignments (as `local_runner.py --set`), and times its phases: reading the splits
(counting, parsing, fingerprinting), building the model, the training steps, the validation
evaluations, the gate and expert-use reports, the export, the provenance and gate-report files,
each exclusive of the others. `--against` runs another checkout of the project (e.g. a
`git worktree` of main) on the same data in the same rounds, the two alternating in a rotating
order, as the machine's load changes; the bench prints each run, the medians per phase and the
ratios of the medians. `--train-copies N` names the training split's files N times: N times the
rows (each row N times), to see how the reading and the memory grow without new data. Peak memory
is the worker process's maximum resident set.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHASES = 'phases '

# The Trainer's functions timed (those a checkout has, in whichever trainer_module module), and the
# phase of each.
TIMED = {'count_rows': 'read splits', 'load_rows': 'read splits', 'split_fingerprint': 'read splits',
         'read_split': 'read splits', 'make_dataset': 'read splits',
         'build_model': 'build model', 'mean_gate_weights': 'gate and expert reports',
         'expert_use_report': 'gate and expert reports', 'export_serving_model': 'export',
         'write_provenance': 'provenance', 'write_gate_report': 'gate report files'}

WORKER = r'''
import glob, json, os, resource, sys, time
sys.path.insert(0, os.getcwd())
import tf_keras as keras
from tfx.components.trainer.fn_args_utils import FnArgs
from pipeline.config import PipelineConfig
from trainer_module import run

run_dir, out, copies = sys.argv[1], sys.argv[2], int(sys.argv[3])
timed, assignments = json.loads(sys.argv[4]), sys.argv[5:]
seconds, stack = {}, []

def wrap(owner, name, phase):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        stack.append(0.0)
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            took = time.perf_counter() - start
            nested = stack.pop()
            seconds[phase] = seconds.get(phase, 0.0) + took - nested
            if stack:
                stack[-1] += took
    setattr(owner, name, wrapper)

# Every module's binding of a timed name: a call goes through the binding of the module it is in.
for module in [module for name, module in sorted(sys.modules.items())
               if name.startswith('trainer_module.')]:
    for name, phase in timed.items():
        if hasattr(module, name):
            wrap(module, name, phase)
wrap(keras.Model, 'fit', 'training steps')
wrap(keras.Model, 'evaluate', 'validation evaluations')
transform = os.path.join(run_dir, 'pipeline_root', 'Transform')
examples = glob.glob(os.path.join(transform, 'transformed_examples', '*'))[0]
start = time.perf_counter()
run.run_fn(FnArgs(
    train_files=[os.path.join(examples, 'Split-train', '*')] * copies,
    eval_files=[os.path.join(examples, 'Split-validation', '*')],
    transform_output=glob.glob(os.path.join(transform, 'transform_graph', '*'))[0],
    serving_model_dir=os.path.join(out, 'Format-Serving'), model_run_dir=os.path.join(out, 'logs'),
    custom_config=PipelineConfig().with_overrides(assignments).trainer_settings().to_dict()))
seconds['total'] = time.perf_counter() - start
seconds['other'] = seconds['total'] - sum(v for k, v in seconds.items() if k != 'total')
with open(os.path.join(out, 'Format-Serving', 'assets.extra', 'provenance.json')) as f:
    provenance = json.load(f)
print('phases ' + json.dumps({'seconds': seconds, 'steps': provenance['steps'],
                               'data': provenance['data'],
                               'peak_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''


def run_once(checkout, args, out):
    result = subprocess.run(
        [sys.executable, '-c', WORKER, args.run_dir, out, str(args.train_copies),
         json.dumps(TIMED), *args.set], cwd=checkout, capture_output=True, text=True, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith(PHASES)]
    if result.returncode or not lines:
        sys.exit(f'{checkout}: the Trainer failed:\n{result.stderr[-3000:]}')
    return json.loads(lines[-1][len(PHASES):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('run_dir')
    parser.add_argument('--rounds', type=int, default=2)
    parser.add_argument('--against', help='another checkout of the project, run alternately')
    parser.add_argument('--train-copies', type=int, default=1)
    parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE')
    parser.add_argument('--out', default='/tmp/trainer-phases')
    args = parser.parse_args()
    sides = {'this': PROJECT_DIR}
    if args.against:
        sides['against'] = os.path.abspath(args.against)
    results = {side: [] for side in sides}
    for round_ in range(args.rounds):
        order = list(sides) if round_ % 2 == 0 else list(reversed(sides))
        for side in order:
            result = run_once(sides[side], args, os.path.join(args.out, side))
            results[side].append(result)
            print(f'round {round_ + 1} {side}: ' + '  '.join(
                f'{phase} {value:.1f}' for phase, value in result['seconds'].items())
                  + f"  peak {result['peak_mb']:.0f} MB  steps {result['steps']}", flush=True)
    phases = list(next(iter(results.values()))[0]['seconds'])
    print(f"\nmedians over {args.rounds} rounds (s){'; ratio this/against' if args.against else ''}")
    for phase in phases + ['peak_mb']:
        medians = {side: statistics.median(
            r['peak_mb'] if phase == 'peak_mb' else r['seconds'].get(phase, 0.0) for r in runs)
            for side, runs in results.items()}
        line = f'  {phase:24s}' + ''.join(f'  {side} {value:8.1f}' for side, value in medians.items())
        if args.against and medians['against']:
            line += f"  ratio {medians['this'] / medians['against']:.2f}"
        print(line)
    fingerprints = {json.dumps(r['data'], sort_keys=True) for runs in results.values() for r in runs}
    print(f"provenance fingerprints {'the same in every run' if len(fingerprints) == 1 else 'DIFFER'}")


if __name__ == '__main__':
    main()
