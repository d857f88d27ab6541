"""Report-exact vs fastai-default optimisers and schedules, trained side by side at small scale on this machine.

    python bench/variants.py [--data ../shared/data] [--n-train 3000] [--epochs 3] [--width 0.25] [--seeds 0 1]

For each report recipe `seedNNN` and its `seedNNN_fastai` variant (same model, data, loss and hyper-parameters;
PyTorch's optimiser and scheduler vs fastai's with fastai's defaults), one `train_run` per seed on a stratified
subset of the training set, judged on the exact test images 0-999. Small scale means: `--width` times the channels,
`--epochs` epochs (the schedule is compressed to them), batch size capped at `--max-bs`. The figures compare the
two variants with each other, not with the reports. Results go to `bench/results/variants-cpu-<date>.json`, rewritten
after every run so a stopped benchmark keeps what it measured.
"""
from __future__ import annotations
import argparse, json, statistics, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from bench import start_training_bench  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default=None, help='CIFAR-10 folder (default: as `dynblocks train` finds it)')
    p.add_argument('--recipes', nargs='+', default=['seed000', 'seed001', 'seed002', 'seed003', 'seed004'])
    p.add_argument('--n-train', type=int, default=3000)
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--width', type=float, default=0.25)
    p.add_argument('--max-bs', type=int, default=128)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    p.add_argument('--out', default=None, help='JSON file (default: bench/results/variants-cpu-<date>.json)')
    a = p.parse_args(argv)
    from dynblocks.recipes import recipe
    from dynblocks.train import RunConfig, train_run
    data, out, res = start_training_bench('variants', a, argv)
    for seed in a.seeds:  # every recipe for one seed before the next seed: a stopped run still compares all of them
        for name in a.recipes:
            for variant in (name, f'{name}_fastai'):
                r = recipe(variant)
                cfg = RunConfig(recipe=variant, n_train=a.n_train, n_valid=1000, epochs=a.epochs, width=a.width,
                                bs=min(r.bs, a.max_bs), seed=seed)
                t = time.perf_counter()
                learn = train_run(cfg, data=data, log=False, bars=False)
                secs = time.perf_counter() - t
                names = list(learn.recorder.metric_names[1:-1])
                last = learn.recorder.values[-1]
                row = dict(recipe=name, variant=variant, lib=r.lib, seed=seed, secs=secs,
                           valid_accuracy=float(last[names.index('valid_accuracy')]),
                           valid_loss=float(last[names.index('valid_loss')]), bs=cfg.bs)
                res['runs'].append(row)
                print(json.dumps(row), flush=True)
                out.write_text(json.dumps(res, indent=1))
    summary = []
    for name in a.recipes:
        accs = {lib: [r['valid_accuracy'] for r in res['runs'] if r['recipe'] == name and r['lib'] == lib] for lib in ('torch', 'fastai')}
        summary.append(dict(recipe=name, **{f'{lib}_mean': statistics.mean(v) for lib, v in accs.items() if v},
                            **{f'{lib}_spread': (max(v) - min(v)) for lib, v in accs.items() if v}))
    res['summary'] = summary
    out.write_text(json.dumps(res, indent=1))
    for s in summary: print(s)


if __name__ == '__main__': main()
