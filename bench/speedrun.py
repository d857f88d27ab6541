"""The 10-minute CPU speedrun, a side-by-side ablation of the dynamic block, and what dynblocks costs over plain code.

    python bench/speedrun.py speedrun --data ../shared/data [--seeds 0 1 2]
    python bench/speedrun.py ablation --data ../shared/data [--n-train 20000] [--epochs 2] [--seeds 0 1 2]
    python bench/speedrun.py overhead --data ../shared/data [--batches 24] [--repeats 3]
    python bench/speedrun.py memory [--bs 128]

speedrun: `dynblocks train --recipe cpu10 --n-valid 1000` as a user types it, one process per seed, timed from the
launch of the command to its end (imports, data, training, flip TTA, writing the run folder all count). Accuracy is
on the exact test images 0-999; the JPEG copies 1000-9999 are scored afterwards, apart. Time to 70/75/80/85 % is read
from the end of each epoch (accuracy without TTA at that point), so it is an upper bound.

ablation: on the same data path, images, epochs and augmentation: (c) dynblocks' cpu10 recipe, (a) the same network
with one branch per block and its width raised to the same FLOPs, (b) fastai's xresnet18 trained as a fastai user
would (`Learner(dls, xresnet18(n_out=10), metrics=accuracy).fit_one_cycle(epochs, 3e-3)`): about the same FLOPs per
image (printed). Same epochs means the same compute; the wall time of each run is recorded beside it.

overhead: `dyn_learner` + `fit` against a plain PyTorch loop over the same model, batches, loss and optimiser
(PyTorch's SGD in both); the device-resident data path against fastai's per-item pipeline at 0, 1 and 2 workers;
memory: peak resident memory of a process training each preset for a few steps at batch `--bs` (synthetic images).

Every figure goes to `bench/results/<part>-cpu-<date>.json` with the command, machine, versions and date; the file is
rewritten after each run, so a stopped benchmark keeps what it measured.
"""
from __future__ import annotations
import argparse, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from bench import machine, RESULTS  # noqa: E402

THRESHOLDS = (0.70, 0.75, 0.80, 0.85)


def _start(part, a, argv):
    import fastai
    from dynblocks.train import resolve_data
    m = machine(); m['fastai'] = fastai.__version__
    try:
        import onnxruntime; m['onnxruntime'] = onnxruntime.__version__
    except ImportError: pass
    out = Path(a.out or RESULTS/f"{part}-cpu-{m['date']}.json")
    path, desc = resolve_data(a.data) if part != 'memory' else (None, 'synthetic images')
    res = dict(what=part, command='python bench/speedrun.py ' + ' '.join(argv if argv is not None else sys.argv[1:]),
               machine=m, data=desc, args=vars(a), runs=[])
    if a.note: res['note'] = a.note
    return path, out, res


def _save(out, res):
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix('.tmp'); tmp.write_text(json.dumps(res, indent=1)); tmp.replace(out)


def _stats(v):
    v = [x for x in v if x is not None]
    if not v: return None
    return dict(median=statistics.median(v), mean=statistics.mean(v), min=min(v), max=max(v), n=len(v))


@__import__('torch').no_grad()
def accuracy_on(model, x, y, stats, bs=500, tta=True) -> float:
    "Accuracy of `model` on uint8 images `x` (N, H, W, 3) and labels `y`, normalised with `stats`, with flip TTA"
    import torch
    mean, std = (torch.tensor(v).reshape(1, 3, 1, 1) for v in stats)
    model.eval(); hits = 0
    for i in range(0, len(x), bs):
        xb = (torch.from_numpy(x[i:i+bs]).permute(0, 3, 1, 2).float()/255 - mean)/std
        p = model(xb).softmax(1)
        if tta: p = p + model(xb.flip(3)).softmax(1)
        hits += int((p.argmax(1) == torch.from_numpy(y[i:i+bs]).long()).sum())
    return hits/len(x)


def _time_to(epoch_end, accs, offset):
    "Seconds from launch to the end of the first epoch at each threshold (None: not reached)"
    return {f'{int(t*100)}': next((offset + s for s, a in zip(epoch_end, accs) if a >= t), None) for t in THRESHOLDS}


def speedrun(a, argv):
    "One `dynblocks train --recipe cpu10` process per seed, timed end to end"
    import numpy as np
    from dynblocks.cifar import load_cifar10
    from dynblocks.export import load_model
    path, out, res = _start('speedrun', a, argv)
    data = load_cifar10(path, download=False)
    (xte, yte) = data['test']
    res['budget_s'] = a.budget
    for seed in a.seeds:
        with tempfile.TemporaryDirectory() as d:
            cmd = ['train', '--recipe', a.recipe, '--n-valid', '1000', '--data', str(path), '--seed', str(seed),
                   '--out', f'{d}/run', '--quiet'] + a.extra
            launch = time.time()
            r = subprocess.run([sys.executable, '-c', 'from dynblocks.cli import main; main()', *cmd],
                               capture_output=True, text=True)
            wall = time.time() - launch
            if r.returncode: sys.exit(f"dynblocks {' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
            s = json.loads(Path(f'{d}/run/summary.json').read_text())
            hist = [l.split(',') for l in Path(f'{d}/run/history.csv').read_text().splitlines()]
            names, rows = hist[0], [list(map(float, h)) for h in hist[1:]]
            accs = [row[names.index('valid_accuracy')] for row in rows]
            offset = s['started_unix'] - launch  # interpreter start and imports, before `train_run` began
            m = load_model(f'{d}/run')
            n_jpeg = min(a.n_jpeg, len(xte) - 1000)
            jpeg = accuracy_on(m, xte[1000:1000+n_jpeg], yte[1000:1000+n_jpeg], m.meta['normalize']) if n_jpeg > 0 else None
        shown = ['train', '--recipe', a.recipe, '--n-valid', '1000', '--data', '<data>', '--seed', str(seed)] + a.extra
        row = dict(seed=seed, command='dynblocks ' + ' '.join(shown),
                   wall_s=round(wall, 1), within_budget=wall <= a.budget, acc_exact1k=s['final_accuracy'],
                   acc_exact1k_tta=s['tta_accuracy'], acc_jpeg9k_tta=jpeg, n_jpeg=n_jpeg, epochs=s['epochs'],
                   epoch_acc=accs, epoch_end_s=[round(offset + t, 1) for t in s['epoch_end_s']],
                   time_to=_time_to(s['epoch_end_s'], accs, offset), startup_s=round(offset, 1), train_s=s['wall_s'],
                   params=s['params'], flops=s['flops'], images_per_s=s['images_per_s'])
        res['runs'].append(row); _save(out, res)
        print(json.dumps({k: row[k] for k in ('seed', 'wall_s', 'acc_exact1k', 'acc_exact1k_tta', 'acc_jpeg9k_tta', 'time_to')}), flush=True)
    runs = res['runs']
    res['summary'] = dict(acc_exact1k_tta=_stats([r['acc_exact1k_tta'] for r in runs]),
                          acc_exact1k=_stats([r['acc_exact1k'] for r in runs]),
                          acc_jpeg9k_tta=_stats([r['acc_jpeg9k_tta'] for r in runs]), wall_s=_stats([r['wall_s'] for r in runs]),
                          time_to={k: _stats([r['time_to'][k] for r in runs]) for k in runs[0]['time_to']},
                          reached={k: sum(r['time_to'][k] is not None for r in runs) for k in runs[0]['time_to']})
    _save(out, res); print(json.dumps(res['summary'], indent=1))


def _same_flops_width(target, size=32):
    "Width of `dyn_cpu` with one branch per block whose FLOPs are closest to `target`"
    from dynblocks.models import create_model, count_flops
    cands = [w/100 for w in range(100, 201, 5)]
    return min(cands, key=lambda w: abs(count_flops(create_model('dyn_cpu', n_branches=1, width=w), size) - target))


def ablation(a, argv):
    "The dynamic recipe, the same network static at the same FLOPs, and fastai's xresnet18: same data, epochs, augmentation"
    import torch
    from fastai.learner import Learner
    from fastai.metrics import accuracy
    from fastai.vision.models.xresnet import xresnet18
    from fastai.torch_core import set_seed
    from dynblocks.cifar import load_cifar10
    from dynblocks.data import cifar10_dls
    from dynblocks.models import create_model, count_flops
    from dynblocks.recipes import recipe
    from dynblocks.train import RunConfig, train_run
    path, out, res = _start('ablation', a, argv)
    data = load_cifar10(path, download=False)
    r = recipe(a.recipe)
    dyn_flops = count_flops(create_model(r.arch))
    w = _same_flops_width(dyn_flops)
    set_seed(0); xres_flops = count_flops(xresnet18(n_out=10))
    res['arms'] = {
        'dynblocks': dict(what=f'{r.arch}, recipe {r.name} ({r.arch} with {create_model(r.arch).block_kw.get("n_branches")} branches per block)',
                          flops=dyn_flops),
        'static': dict(what=f'{r.arch} with 1 branch per block, width {w} (same FLOPs), recipe {r.name}',
                       flops=count_flops(create_model(r.arch, n_branches=1, width=w))),
        'xresnet18': dict(what="fastai's xresnet18: Learner(dls, xresnet18(n_out=10), metrics=accuracy).fit_one_cycle(epochs, 3e-3)",
                          flops=xres_flops)}
    for seed in a.seeds:  # every arm for one seed before the next seed
        for arm in a.arms:
            t = time.time()
            if arm == 'xresnet18':
                dls = cifar10_dls(data, bs=r.bs, aug=r.aug, n_train=a.n_train, n_valid=1000, seed=seed)
                set_seed(seed, reproducible=True)
                learn = Learner(dls, xresnet18(n_out=10), metrics=accuracy)
                with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(a.epochs, 3e-3)
                acc = float(learn.recorder.values[-1][-1])
            else:
                cfg = RunConfig(recipe=r.name, n_train=a.n_train, n_valid=1000, epochs=a.epochs, seed=seed,
                                **(dict(n_branches=1, width=w) if arm == 'static' else {}))
                learn = train_run(cfg, data=data, log=False, bars=False)
                acc = learn.run_summary['final_accuracy']
            with learn.no_bar(), learn.no_logging(): p, y = learn.flip_tta()
            row = dict(arm=arm, seed=seed, acc_exact1k=acc, acc_exact1k_tta=float((p.argmax(1) == y).float().mean()),
                       wall_s=round(time.time() - t, 1), params=sum(q.numel() for q in learn.model.parameters()))
            res['runs'].append(row); _save(out, res); print(json.dumps(row), flush=True)
    res['summary'] = {arm: dict(acc_exact1k=_stats([x['acc_exact1k'] for x in res['runs'] if x['arm'] == arm]),
                                acc_exact1k_tta=_stats([x['acc_exact1k_tta'] for x in res['runs'] if x['arm'] == arm]),
                                wall_s=_stats([x['wall_s'] for x in res['runs'] if x['arm'] == arm])) for arm in a.arms}
    _save(out, res); print(json.dumps(res['summary'], indent=1))


def overhead(a, argv):
    "dyn_learner vs a plain PyTorch loop (same model, batches, loss, optimiser); fast data path vs fastai's per-item one"
    import copy, torch
    from fastai.callback.core import Callback
    from dynblocks.cifar import load_cifar10
    from dynblocks.data import cifar10_dls
    from dynblocks.learner import dyn_learner
    from dynblocks.recipes import recipe
    path, out, res = _start('overhead', a, argv)
    data = load_cifar10(path, download=False)
    r = recipe(a.recipe, lib='torch')  # PyTorch's SGD inside fastai too: the same optimiser on both sides
    dls = cifar10_dls(data, bs=r.bs, aug=r.aug, n_train=a.batches*r.bs, n_valid=r.bs, seed=0)
    learn = dyn_learner(dls, recipe=r, seed=0)
    model0 = copy.deepcopy(learn.model)

    class _Clock(Callback):
        order = 99
        def before_train(self): self.t = time.perf_counter()
        def after_train(self): self.secs = time.perf_counter() - self.t
    def fastai_epoch():
        clock = _Clock()
        with learn.no_bar(), learn.no_logging(): learn.fit(1, r.lr, cbs=[clock])
        return clock.secs
    model = copy.deepcopy(model0).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=r.lr, momentum=r.mom, nesterov=True, weight_decay=r.wd)
    loss_func = r.loss_func()
    def plain_epoch():
        model.train(); t = time.perf_counter()
        for xb, yb in dls.train:
            loss = loss_func(model(xb.contiguous(memory_format=torch.channels_last)), yb)
            loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t
    fastai_epoch(); plain_epoch()  # warm-up
    ts = dict(fastai=[], plain=[])
    for _ in range(a.repeats):  # interleaved, so a change in the machine's load hits both
        ts['fastai'].append(fastai_epoch()); ts['plain'].append(plain_epoch())
    n = len(dls.train)*r.bs
    loop = {k: dict(img_s=n/statistics.median(v), secs=_stats(v)) for k, v in ts.items()}
    loop['ratio'] = loop['fastai']['img_s']/loop['plain']['img_s']
    res['training_loop'] = dict(model=r.arch, bs=r.bs, batches=len(dls.train), **loop)
    print(json.dumps(res['training_loop']), flush=True); _save(out, res)
    rows = []
    for name, fast, nw in [('device-resident', True, 0)] + [(f'fastai per-item, {k} workers', False, k) for k in a.workers]:
        d = cifar10_dls(data, bs=r.bs, aug=r.aug, n_train=a.data_images, n_valid=r.bs, seed=0, fast=fast)
        dl = d.train if fast else d.train.new(num_workers=nw)
        def epoch():
            t = time.perf_counter()
            for _ in dl: pass
            return time.perf_counter() - t
        epoch()
        v = [epoch() for _ in range(a.repeats)]
        rows.append(dict(path=name, workers=nw, images=len(dl)*dl.bs, img_s=len(dl)*dl.bs/statistics.median(v), secs=_stats(v)))
        print(json.dumps(rows[-1]), flush=True)
    best = max((x for x in rows if x['path'] != 'device-resident'), key=lambda x: x['img_s'])
    res['data_path'] = dict(policy=r.aug, rows=rows, best_per_item=best['path'], speedup_vs_best=rows[0]['img_s']/best['img_s'])
    _save(out, res); print(json.dumps({k: v for k, v in res['data_path'].items() if k != 'rows'}))


_MEM = """
import sys, json, torch
from dynblocks.models import create_model
name, bs = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
m = create_model(name).to(memory_format=torch.channels_last)
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
x = torch.randn(bs, 3, 32, 32).contiguous(memory_format=torch.channels_last); y = torch.randint(0, 10, (bs,))
def status(key): return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith(key))/1024  # MiB
base = status('VmRSS:')
open('/proc/self/clear_refs', 'w').write('5')  # Linux: reset the peak (VmHWM) to the current size, so imports do not count
for _ in range(3):
    torch.nn.functional.cross_entropy(m(x), y).backward(); opt.step(); opt.zero_grad(set_to_none=True)
print(json.dumps(dict(base_mib=base, peak_mib=status('VmHWM:'))))
"""


def memory(a, argv):
    "Peak resident memory of a fresh process (Linux) training each preset for 3 steps at batch `--bs`, and its rise over the built model"
    from dynblocks.models import list_models, model_info
    _, out, res = _start('memory', a, argv)
    for name in a.presets or list_models():
        r = subprocess.run([sys.executable, '-c', _MEM, name, str(a.bs)], capture_output=True, text=True)
        if r.returncode: sys.exit(f"{name}: {r.stderr[-2000:]}")
        d = json.loads(r.stdout.strip().splitlines()[-1])
        info = model_info(name)
        row = dict(preset=name, bs=a.bs, params=info['params'], flops=info['flops'], peak_mib=round(d['peak_mib'], 1),
                   training_mib=round(d['peak_mib'] - d['base_mib'], 1))
        res['runs'].append(row); _save(out, res); print(json.dumps(row), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('part', choices=['speedrun', 'ablation', 'overhead', 'memory'])
    p.add_argument('--data', default=None, help='CIFAR-10 folder (default: as `dynblocks train` finds it)')
    p.add_argument('--recipe', default='cpu10')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--budget', type=float, default=600., help='speedrun: the wall-time budget in seconds')
    p.add_argument('--n-jpeg', type=int, default=9000, help='speedrun: JPEG test images scored after the run')
    p.add_argument('--n-train', type=int, default=20000, help='ablation: stratified training images')
    p.add_argument('--epochs', type=int, default=2, help='ablation: epochs of every arm')
    p.add_argument('--arms', nargs='+', default=['dynblocks', 'static', 'xresnet18'])
    p.add_argument('--batches', type=int, default=24, help='overhead: training batches per timed epoch')
    p.add_argument('--data-images', type=int, default=10000, help='overhead: images per timed data-path epoch')
    p.add_argument('--workers', type=int, nargs='+', default=[0, 1, 2], help="overhead: fastai's per-item worker counts")
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--presets', nargs='*', default=None, help='memory: presets (default: all)')
    p.add_argument('--bs', type=int, default=128, help='memory: batch size')
    p.add_argument('--out', default=None, help='JSON file (default: bench/results/<part>-cpu-<date>.json)')
    p.add_argument('--note', default=None, help='a remark recorded in the JSON (e.g. what else ran on the machine)')
    args = list(sys.argv[1:] if argv is None else argv)
    cut = args.index('--') if '--' in args else len(args)  # after `--`: more `dynblocks train` options (smoke tests)
    a = p.parse_args(args[:cut])
    a.extra = args[cut+1:]
    {'speedrun': speedrun, 'ablation': ablation, 'overhead': overhead, 'memory': memory}[a.part](a, argv)


if __name__ == '__main__': main()
