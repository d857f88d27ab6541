"""The 10-minute CPU speedrun, a side-by-side ablation of the dynamic block, and what dynblocks costs over plain code.

    python bench/speedrun.py speedrun --data ../shared/data [--seeds 0 1 2]
    python bench/speedrun.py ideas --data ../shared/data [--ideas baseline dirac ...]   # airbench's ideas, each alone
    python bench/speedrun.py profile --data ../shared/data                             # where a cpu10 step's time goes
    python bench/speedrun.py throughput --data ../shared/data                          # img/s at each width and batch size
    python bench/speedrun.py mainjob                                                   # `dynblocks train` on the sample
    python bench/speedrun.py ablation --data ../shared/data [--n-train 20000] [--epochs 2] [--seeds 0 1 2]
    python bench/speedrun.py overhead --data ../shared/data [--batches 24] [--repeats 3]
    python bench/speedrun.py memory [--bs 128]

speedrun: `dynblocks train --recipe cpu10 --n-valid 1000` as a user types it, one process per seed, timed from the
launch of the command to its end (imports, data, training, flip TTA, writing the run folder all count). Accuracy is
on the exact test images 0-999; the JPEG copies 1000-9999 are scored afterwards, apart. Time to 70/75/80/85 % is read
from the end of each epoch (accuracy without TTA at that point), so it is an upper bound. Before each run the script
waits for an idle machine; around it, it records the load averages and the CPU time other processes used (from
/proc/stat less the run's own): a run during which they used more than `--max-other` cores is marked `loaded` and left
out of the summary (`--loaded-ok` starts runs without waiting: the loaded-machine test).

ideas: airbench's ideas (`IDEAS`), each alone on top of the recipe, 3 seeds each, at the recipe's time budget; the JSON
holds every run and each idea's gain over `baseline`. profile: one `cpu10` step split into data, forward, loss,
backward, optimiser and callbacks, its achieved GFLOP/s, and the convolution peak measured at the net's own shapes in
the same run. throughput: the recipe's net at each `--widths` x `--bss`, training images per second on its own data
path after a warm-up epoch (median of `--repeats` epochs, in one process so the ratios are fair), its GFLOP/s and the
passes it makes per 100 s: what a width or batch size costs in passes at a fixed budget. mainjob: the README's main job (`dynblocks train` on the sample), timed from launch to exit.

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
from bench import machine, RESULTS, wait_for_idle, LOCK, timeit  # noqa: E402
from dynblocks.measure import LoadMeter  # noqa: E402
from fastai.callback.core import Callback  # noqa: E402

THRESHOLDS = (0.70, 0.75, 0.80, 0.85, 0.90)
EVENTS = ('before_train', 'before_batch', 'after_pred', 'after_loss', 'after_backward', 'after_step', 'after_batch', 'after_train')


class Clock(Callback):
    "`time.perf_counter()` at each of `events` while training (fastai's Recorder times epochs, not a batch's phases)"
    order = 200  # last: each stamp comes after every other callback's work for its event
    def __init__(self, events=EVENTS): self.events = events
    def before_fit(self): self.t = {e: [] for e in self.events}
    def _stamp(self, e):
        if self.training and e in self.t: self.t[e].append(time.perf_counter())
    def before_train(self): self._stamp('before_train')
    def before_batch(self): self._stamp('before_batch')
    def after_pred(self): self._stamp('after_pred')
    def after_loss(self): self._stamp('after_loss')
    def after_backward(self): self._stamp('after_backward')
    def after_step(self): self._stamp('after_step')
    def after_batch(self): self._stamp('after_batch')
    def after_train(self): self._stamp('after_train')


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
def accuracy_on(model, x, y, tta='flip', bs=500) -> float:
    "Accuracy of a saved model (`load_model`) on uint8 images `x` (N, H, W, 3) and labels `y`: the library's preprocessing and test-time views"
    import torch
    from dynblocks.infer import to_input
    from dynblocks.tta import tta_probs
    model.eval(); hits = 0
    for i in range(0, len(x), bs):
        p = tta_probs(model, torch.from_numpy(to_input(x[i:i+bs], model.meta)), tta)
        hits += int((p.argmax(1) == torch.from_numpy(y[i:i+bs]).long()).sum())
    return hits/len(x)


def _timed_cli(a, cmd, what):
    "`dynblocks CMD` in a new process on an idle machine (unless `a.loaded_ok`), holding the bench lock: (its result, the load around it, its launch time, seconds from launch to exit)"
    if not a.loaded_ok: wait_for_idle(a.max_other)
    if not a.loaded_ok: LOCK.write_text(what)  # helpers and tests wait while it exists
    try:
        t0 = time.time()  # after the wait: the run's own seconds
        with LoadMeter(a.max_other) as lm:
            r = subprocess.run([sys.executable, '-c', 'from dynblocks.cli import main; main()', *cmd], capture_output=True, text=True)
        wall = time.time() - t0
    finally:
        if not a.loaded_ok: LOCK.unlink(missing_ok=True)
    return r, lm.record, t0, wall


def _time_to(epoch_end, accs, offset):
    "Seconds from launch to the end of the first epoch at each threshold (None: not reached)"
    return {f'{int(t*100)}': next((offset + s for s, a in zip(epoch_end, accs) if a >= t), None) for t in THRESHOLDS}


def _speedrun_rows(a, path, xte, yte, extra, arm=None, done=()):
    "One `dynblocks train --recipe` process per seed (not in `done`), timed from launch to exit on an idle machine; yields rows"
    from dynblocks.export import load_model
    for seed in a.seeds:
        if seed in done: continue
        with tempfile.TemporaryDirectory() as d:
            cmd = ['train', '--recipe', a.recipe, '--n-valid', '1000', '--data', str(path), '--seed', str(seed),
                   '--out', f'{d}/run', '--quiet'] + extra
            r, load, t0, wall = _timed_cli(a, cmd, f'speedrun seed {seed}')
            if r.returncode: sys.exit(f"dynblocks {' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
            s = json.loads(Path(f'{d}/run/summary.json').read_text())
            hist = [l.split(',') for l in Path(f'{d}/run/history.csv').read_text().splitlines()]
            names, rows = hist[0], [list(map(float, h)) for h in hist[1:]]
            accs = [row[names.index('valid_accuracy')] for row in rows]
            offset = s['started_unix'] - t0  # interpreter start and imports, before `train_run` began
            m = load_model(f'{d}/run')
            n_jpeg = min(a.n_jpeg, len(xte) - 1000)
            jpeg = accuracy_on(m, xte[1000:1000+n_jpeg], yte[1000:1000+n_jpeg]) if n_jpeg > 0 else None
            flip, multicrop = (accuracy_on(m, xte[:1000], yte[:1000], tta) for tta in ('flip', 'flip_shift'))  # paired: the same net, 2 and 6 views
        shown = ['train', '--recipe', a.recipe, '--n-valid', '1000', '--data', '<data>', '--seed', str(seed)] + extra
        yield dict(arm=arm, seed=seed, command='dynblocks ' + ' '.join(shown), started=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(t0)),
                   wall_s=round(wall, 1), within_budget=wall <= a.budget, acc_exact1k=s['final_accuracy'],
                   acc_exact1k_tta=s['tta_accuracy'], tta=s.get('tta'), acc_exact1k_flip_after=flip, acc_exact1k_multicrop=multicrop, acc_jpeg9k_tta=jpeg, n_jpeg=n_jpeg, epochs=s['epochs'],
                   epoch_acc=accs, epoch_end_s=[round(offset + t, 1) for t in s['epoch_end_s']],
                   time_to=_time_to(s['epoch_end_s'], accs, offset), startup_s=round(offset, 1), train_s=s['wall_s'],
                   params=s['params'], flops=s['flops'], images_per_s=s['images_per_s'], budget=s.get('budget'), **load)


def _summary(runs):
    "Medians and spreads of the clean (not loaded) runs"
    runs = [r for r in runs if not r['loaded']]
    if not runs: return None
    return dict(n=len(runs), acc_exact1k_tta=_stats([r['acc_exact1k_tta'] for r in runs]),
                acc_exact1k=_stats([r['acc_exact1k'] for r in runs]),
                acc_exact1k_multicrop=_stats([r.get('acc_exact1k_multicrop') for r in runs]),
                acc_jpeg9k_tta=_stats([r['acc_jpeg9k_tta'] for r in runs]), wall_s=_stats([r['wall_s'] for r in runs]),
                epochs=_stats([r['epochs'] for r in runs]), images_per_s=_stats([r['images_per_s'] for r in runs]), within_budget=sum(r['within_budget'] for r in runs),
                time_to={k: _stats([r['time_to'][k] for r in runs]) for k in runs[0]['time_to']},
                reached={k: sum(r['time_to'][k] is not None for r in runs) for k in runs[0]['time_to']})


def speedrun(a, argv):
    "One `dynblocks train --recipe cpu10` process per seed, timed end to end; a run during which other processes used the CPU is marked `loaded` and left out of the summary"
    from dynblocks.cifar import load_cifar10
    path, out, res = _start('speedrun', a, argv)
    (xte, yte) = load_cifar10(path, download=False)['test']
    res['budget_s'], res['max_other_cores'] = a.budget, a.max_other
    for row in _speedrun_rows(a, path, xte, yte, a.extra):
        res['runs'].append(row); res['summary'] = _summary(res['runs']); _save(out, res)
        print(json.dumps({k: row[k] for k in ('seed', 'wall_s', 'acc_exact1k', 'acc_exact1k_tta', 'acc_jpeg9k_tta', 'time_to', 'loaded')}), flush=True)
    res['summary'] = _summary(res['runs'])
    _save(out, res); print(json.dumps(res['summary'], indent=1))


# airbench's ideas, each alone on top of the `cpu10` recipe (issue 25): extra `dynblocks train` options per arm
IDEAS = {
    'baseline': dict(what='the cpu10 recipe as it is', args=[]),
    'bn_bias': dict(what='BatchNorm scales fixed at 1, biases at 64x the learning rate', args=['--recipe-kw', '{"bn_bias_lr": 64}']),
    'dirac': dict(what='identity (dirac) init of every 3x3 kernel', args=['--arch-kw', '{"init": "dirac"}']),
    'lookahead': dict(what='lookahead (EMA pulled every 5 steps after 30 %) with BatchNorm momentum 0.4',
                      args=['--recipe-kw', '{"lookahead": 0.95, "bn_momentum": 0.4}']),
    'alt_flip': dict(what='alternating flip', args=['--recipe-kw', '{"aug": "alt_flip_shift"}']),
    'whiten_bias': dict(what="the whitening stem's bias trained for the first 30 % only", args=['--recipe-kw', '{"whiten_bias": 0.3}']),
    'multicrop_tta': dict(what='multi-crop TTA (6 views) instead of flip TTA', args=['--recipe-kw', '{"tta": "flip_shift"}']),
    'width_0.75': dict(what='width 0.75: 0.6x the FLOPs per image, so about 1.3x the passes in the budget (the throughput part)',
                       args=['--width', '0.75']),
}


def flip_acc(r):
    "A run's accuracy on the exact 1k with flip TTA: scored after the run, else its own TTA when that was flip"
    return r['acc_exact1k_flip_after'] if r.get('acc_exact1k_flip_after') is not None else r['acc_exact1k_tta'] if r.get('tta') in ('flip', None) else None


def flip_accs(runs):
    "`flip_acc` of each clean run that has one"
    return [a for a in map(flip_acc, [r for r in runs if not r['loaded']]) if a is not None]


def recipe_since(sr, results=RESULTS):
    "A sentence when the speedrun file `sr` measured `cpu10` before it took what `cpu10-choice` chose (lr, init), else None"
    f = Path(results)/'cpu10-choice'
    if not (f/'summary.json').exists(): return None
    from dynblocks.recipes import recipe
    C, r = json.loads((f/'summary.json').read_text()), recipe('cpu10')
    base = next(a for a in C['config']['arms'] if a['name'] == C['baseline'])
    old, new = (round(C['arms'][C['baseline']]['lr'], 6), base['model_kw'].get('init')), (round(r.lr, 6), r.arch_kw.get('init'))
    from dynblocks.compare import read_results
    day = max(r['finished'] for r in read_results(f)[0].values() if r['kind'] == 'final')[:10]  # the choice's last final run (the library's reader)
    if old == new or sr['machine']['date'] > day: return None
    won = next((a['name'] for a in C['config']['arms'] if (round(C['arms'][a['name']]['lr'], 6), a['model_kw'].get('init')) == new), None)
    ex = next(k for k in C['subsets'] if k.startswith('exact'))
    acc = C['arms'][won]['acc'][ex] if won else None
    return (f"measured before `cpu10` took lr {r.lr:g} and the {new[1] or 'default'} init on {day} (it trained with lr {old[0]:g} and "
            f"{old[1] or 'PyTorch' + chr(39) + 's default'} init)" + (f"; the recipe as it is now, {len(acc)} seeds at the same budget: "
            f"{statistics.mean(acc):.1f} % on the exact 1k with its TTA (Benchmarks: `cpu10` through the same lens)" if acc else '')
            + "; its speedrun re-run is next")


def _idea_summaries(runs):
    "Each arm's `_summary`, with its accuracy under flip TTA whatever TTA its runs used (the recipe's may be multi-crop)"
    out = {k: _summary([r for r in runs if r['arm'] == k]) for k in IDEAS if any(r['arm'] == k for r in runs)}
    for k, v in out.items():
        if v: v['acc_flip'] = _stats(flip_accs([r for r in runs if r['arm'] == k]))
    return out


def ideas(a, argv):
    "Each of airbench's ideas alone against the recipe as it is, 3 seeds each, at the recipe's time budget; appends to the JSON"
    from dynblocks.cifar import load_cifar10
    path, out, res = _start('ideas', a, argv)
    if out.exists(): res['runs'] = json.loads(out.read_text())['runs']  # continue: clean runs are kept, loaded ones redone
    if a.baseline_from:  # the recipe as it is, already measured by the `speedrun` part: its clean runs are the baseline
        src = json.loads(Path(a.baseline_from).read_text())
        kept = [dict(r, arm='baseline', source=str(a.baseline_from)) for r in src['runs'] if not r['loaded']]
        res['runs'] = [r for r in res['runs'] if r['arm'] != 'baseline'] + kept
    if 'baseline' in a.ideas and not a.baseline_from:  # measured afresh beside the ideas: the imported runs go
        res['runs'] = [r for r in res['runs'] if not (r['arm'] == 'baseline' and r.get('source'))]
    (xte, yte) = load_cifar10(path, download=False)['test']
    res['budget_s'], res['ideas'] = a.budget, {k: v['what'] for k, v in IDEAS.items()}
    for arm in a.ideas:
        done = {r['seed'] for r in res['runs'] if r['arm'] == arm and not r['loaded']}
        for row in _speedrun_rows(a, path, xte, yte, IDEAS[arm]['args'] + a.extra, arm, done):
            res['runs'] = [r for r in res['runs'] if (r['arm'], r['seed']) != (arm, row['seed'])] + [row]
            res['summary'] = _idea_summaries(res['runs'])
            _save(out, res)
            print(json.dumps({k: row[k] for k in ('arm', 'seed', 'wall_s', 'acc_exact1k_tta', 'epochs', 'loaded')}), flush=True)
    res['summary'] = _idea_summaries(res['runs'])
    pairs = [r['acc_exact1k_multicrop'] - r['acc_exact1k_flip_after'] for r in res['runs'] if not r['loaded'] and r.get('acc_exact1k_multicrop') is not None]
    res['multicrop_paired'] = dict(what='6-view multi-crop TTA minus flip TTA, the same trained net scored both ways after each run', **_stats(pairs)) if pairs else None
    base = (res.get('summary') or {}).get('baseline')
    if base:
        res['gains'] = {k: v['acc_flip']['mean'] - base['acc_flip']['mean'] for k, v in res['summary'].items() if v and k != 'baseline'}
    _save(out, res); print(json.dumps(res.get('gains'), indent=1))


def mainjob(a, argv):
    "The README's main job as a new user runs it (`dynblocks train` on the shipped sample), timed from launch to exit per seed"
    from dynblocks.cifar import sample_path
    _, out, res = _start('mainjob', a, argv)
    res['data'] = 'the CIFAR-10 sample shipped with dynblocks (1,000 train / 200 test images)'
    for seed in a.seeds:
        with tempfile.TemporaryDirectory() as d:
            cmd = ['train', '--data', 'sample', '--seed', str(seed), '--out', f'{d}/run', '--quiet'] + a.extra
            r, load, t0, wall = _timed_cli(a, cmd, f'mainjob seed {seed}')
            if r.returncode: sys.exit(f"dynblocks {' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
            s = json.loads(Path(f'{d}/run/summary.json').read_text())
        row = dict(seed=seed, command='dynblocks ' + ' '.join(['train', '--data', 'sample', '--seed', str(seed)] + a.extra),
                   wall_s=round(wall, 1), acc=s['final_accuracy'], epochs=s['epochs'], train_s=s['wall_s'], **load)
        res['runs'].append(row); _save(out, res); print(json.dumps(row), flush=True)
    clean = [r for r in res['runs'] if not r['loaded']]
    res['summary'] = dict(acc=_stats([r['acc'] for r in clean]), wall_s=_stats([r['wall_s'] for r in clean]),
                          epochs=_stats([r['epochs'] for r in clean])) if clean else None
    _save(out, res); print(json.dumps(res['summary'], indent=1))


def profile(a, argv):
    "Where a `cpu10` training step's time goes (data, forward, loss, backward, optimiser, callbacks), its achieved GFLOP/s, and the convolution peak at the net's own shapes"
    import torch, torch.nn.functional as F
    from dynblocks.cifar import load_cifar10
    from dynblocks.data import cifar10_dls
    from dynblocks.learner import dyn_learner
    from dynblocks.models import count_flops
    from dynblocks.recipes import recipe
    path, out, res = _start('profile', a, argv)
    r = recipe(a.recipe)
    kw = json.loads(a.arch_kw) if a.arch_kw else {}
    dls = cifar10_dls(load_cifar10(path, download=False), bs=r.bs, aug=r.aug, stats=r.stats, n_train=(a.batches+1)*r.bs, n_valid=r.bs, seed=0)
    learn = dyn_learner(dls, recipe=r, seed=0, model_kw=kw, cpu_note=False)
    clock = Clock(('before_batch', 'after_pred', 'after_loss', 'after_backward', 'after_step', 'after_batch'))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, r.lr, cbs=[clock])  # warm-up epoch: kernels chosen, caches filled
    with learn.no_bar(), learn.no_logging(): learn.fit(1, r.lr, cbs=[clock])
    t = {e: v[1:] for e, v in clock.t.items()}  # the first batch of the epoch pays for the loader's start
    n = len(t['before_batch'])
    def span(a_, b_): return statistics.median(y - x for x, y in zip(t[a_], t[b_]))
    data = statistics.median(t['before_batch'][i+1] - t['after_batch'][i] for i in range(n - 1))
    phases = dict(data=data, forward=span('before_batch', 'after_pred'), loss=span('after_pred', 'after_loss'),
                  backward=span('after_loss', 'after_backward'), optimiser=span('after_backward', 'after_step'),
                  callbacks_and_rest=span('after_step', 'after_batch'))
    step = sum(phases.values())
    flops = count_flops(learn.model)  # forward, one image
    achieved = 3*flops*r.bs/(phases['forward'] + phases['backward'])/1e9
    # the convolution peak at the net's own shapes: each conv alone, forward + backward, channels-last
    mods = [m for m in learn.model.modules() if isinstance(m, torch.nn.Conv2d) or type(m).__name__ == 'DynBlock']
    seen = {}
    hs = [m.register_forward_hook(lambda m_, i, o: seen.setdefault(m_, tuple(i[0].shape)) and None) for m in mods]  # None: keep the output
    learn.model.eval()
    with torch.no_grad(): learn.model(dls.one_batch()[0].contiguous(memory_format=torch.channels_last))
    for h in hs: h.remove()
    rows, tot_f, tot_t = [], 0., 0.
    for m, shp in seen.items():
        if type(m).__name__ == 'DynBlock': w, stride, pad = m._kernel().detach(), m.stride, m.padding  # the fused conv of all branches
        else: w, stride, pad = m.weight.detach(), m.stride, m.padding
        x = torch.randn(shp).contiguous(memory_format=torch.channels_last).requires_grad_()
        wt = w.clone().contiguous(memory_format=torch.channels_last).requires_grad_()
        def f(): F.conv2d(x, wt, None, stride, pad).sum().backward()
        tm = timeit(f, torch.device('cpu'), warmup=2, repeats=5)['median']
        y = F.conv2d(x.detach(), wt.detach(), None, stride, pad)
        fl = 3*2*y.numel()*w.shape[1]*w.shape[2]*w.shape[3]  # forward + backward: 3x the multiply-adds x 2
        rows.append(dict(layer=type(m).__name__, input=list(shp), weight=list(w.shape), gflop_s=fl/tm/1e9, ms=tm*1e3))
        tot_f += fl; tot_t += tm
    peak = tot_f/tot_t/1e9
    prof = []
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as pr:
        with learn.no_bar(), learn.no_logging(): learn.fit(1, r.lr)
    for e in sorted(pr.key_averages(), key=lambda e: -e.self_cpu_time_total)[:12]:
        prof.append(dict(op=e.key, self_ms=round(e.self_cpu_time_total/1e3, 1), calls=e.count))
    res.update(recipe=r.name, arch=r.arch, arch_kw=kw, bs=r.bs, batches=n, step_s=step, phases_s=phases,
               phases_pct={k: round(100*v/step, 1) for k, v in phases.items()}, fwd_flops=flops,
               achieved_gflop_s=achieved, achieved_gflop_s_whole_step=3*flops*r.bs/step/1e9,
               conv_peak_gflop_s=peak, fraction_of_peak=achieved/peak, convs=rows, top_ops=prof)
    _save(out, res)
    print(json.dumps({k: res[k] for k in ('step_s', 'phases_pct', 'achieved_gflop_s', 'conv_peak_gflop_s', 'fraction_of_peak')}, indent=1))


def throughput(a, argv):
    "Training images per second of the recipe's net at each width and batch size (its data path, channels-last), in one run so the ratios are fair, and the passes each makes in a fixed time"
    from dynblocks.cifar import load_cifar10
    from dynblocks.data import cifar10_dls
    from dynblocks.learner import dyn_learner
    from dynblocks.models import count_flops
    from dynblocks.recipes import recipe
    path, out, res = _start('throughput', a, argv)
    r, data = recipe(a.recipe), load_cifar10(path, download=False)
    if not a.loaded_ok: wait_for_idle(a.max_other); LOCK.write_text('throughput')
    n_img = len(data['train'][1])
    with LoadMeter(a.max_other) as lm:  # this process's own work is not another's
        try:
            for bs in a.bss:
                dls = cifar10_dls(data, bs=bs, aug=r.aug, stats=r.stats, n_train=(a.images//bs + 1)*bs, n_valid=bs, seed=0)
                for w in a.widths:
                    learn = dyn_learner(dls, recipe=r, seed=0, model_kw={'width': w}, cpu_note=False)
                    rates = []
                    for i in range(a.repeats + 1):  # the first epoch warms up (kernels chosen, caches filled)
                        clock = Clock(('after_batch',))
                        with learn.no_bar(), learn.no_logging(): learn.fit(1, r.lr, cbs=[clock])
                        t = clock.t['after_batch']
                        if i: rates.append((len(t) - 1)*bs/(t[-1] - t[0]))  # from the first batch's end: the loader's start is not counted
                    fl, img_s = count_flops(learn.model), statistics.median(rates)
                    row = dict(width=w, bs=bs, fwd_flops=fl, params=sum(p.numel() for p in learn.model.parameters()), img_s=img_s,
                               img_s_range=[min(rates), max(rates)], gflop_s=3*fl*img_s/1e9, passes_per_100s=100*img_s/n_img)
                    res['runs'].append(row); _save(out, res); print(json.dumps(row), flush=True)
        finally:
            if not a.loaded_ok: LOCK.unlink(missing_ok=True)
    res['load'] = lm.record
    rw = min(a.widths, key=lambda w: abs(w - (r.arch_kw or {}).get('width', 1.)))  # the recipe's own width
    at_w = [x for x in res['runs'] if x['width'] == rw]
    best = max(at_w, key=lambda x: x['img_s'])
    mine = next((x for x in at_w if x['bs'] == r.bs), None)
    res['choice'] = dict(recipe=r.name, width=rw, bs=r.bs, fastest_bs=best['bs'],
                         recipe_bs_share_of_fastest=mine['img_s']/best['img_s'] if mine else None,
                         gflop_s_by_width={str(x['width']): x['gflop_s'] for x in res['runs'] if x['bs'] == r.bs})
    _save(out, res); print(json.dumps(res['choice'], indent=1))


def ablation(a, argv):
    "The dynamic recipe, the same network static at the same FLOPs, and fastai's xresnet18: same data, epochs, augmentation"
    import torch
    from fastai.learner import Learner
    from fastai.metrics import accuracy
    from fastai.vision.models.xresnet import xresnet18
    from fastai.torch_core import set_seed
    from dynblocks.cifar import load_cifar10
    from dynblocks.data import cifar10_dls
    from dynblocks.models import create_model, count_flops, same_flops_width
    from dynblocks.recipes import recipe
    from dynblocks.train import RunConfig, train_run
    path, out, res = _start('ablation', a, argv)
    data = load_cifar10(path, download=False)
    r = recipe(a.recipe)
    dyn_flops = count_flops(create_model(r.arch))
    w = same_flops_width(r.arch, dyn_flops, n_branches=1)
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
                dls = cifar10_dls(data, bs=r.bs, aug=r.aug, n_train=a.n_train, n_valid=a.n_valid, seed=seed)
                set_seed(seed, reproducible=True)
                learn = Learner(dls, xresnet18(n_out=10), metrics=accuracy)
                with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(a.epochs, 3e-3)
                acc = float(learn.recorder.values[-1][-1])
            else:
                cfg = RunConfig(recipe=r.name, n_train=a.n_train, n_valid=a.n_valid, epochs=a.epochs, seed=seed,
                                **(dict(n_branches=1, width=w) if arm == 'static' else dict(n_branches=2)))  # cpu10 itself trains one branch
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
    from dynblocks.cifar import load_cifar10
    from dynblocks.data import cifar10_dls
    from dynblocks.learner import dyn_learner
    from dynblocks.recipes import recipe
    path, out, res = _start('overhead', a, argv)
    data = load_cifar10(path, download=False)
    r = recipe(a.recipe, lib='torch', budget=None)  # PyTorch's SGD inside fastai too: the same optimiser on both sides; epochs, not seconds
    dls = cifar10_dls(data, bs=r.bs, aug=r.aug, n_train=a.batches*r.bs, n_valid=r.bs, seed=0)
    learn = dyn_learner(dls, recipe=r, seed=0)
    model0 = copy.deepcopy(learn.model)

    def fastai_epoch():
        clock = Clock(('before_train', 'after_train'))
        with learn.no_bar(), learn.no_logging(): learn.fit(1, r.lr, cbs=[clock])
        return clock.t['after_train'][-1] - clock.t['before_train'][-1]
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
    p.add_argument('part', choices=['speedrun', 'ideas', 'profile', 'throughput', 'mainjob', 'ablation', 'overhead', 'memory'])
    p.add_argument('--data', default=None, help='CIFAR-10 folder (default: as `dynblocks train` finds it)')
    p.add_argument('--recipe', default='cpu10')
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--budget', type=float, default=600., help='speedrun: the wall-time budget in seconds')
    p.add_argument('--n-jpeg', type=int, default=9000, help='speedrun: JPEG test images scored after the run')
    p.add_argument('--n-train', type=int, default=20000, help='ablation: stratified training images')
    p.add_argument('--epochs', type=int, default=2, help='ablation: epochs of every arm')
    p.add_argument('--n-valid', type=int, default=1000, help='ablation: test images scored (the exact 1k; fewer only in the smoke test)')
    p.add_argument('--arms', nargs='+', default=['dynblocks', 'static', 'xresnet18'])
    p.add_argument('--batches', type=int, default=24, help='overhead: training batches per timed epoch')
    p.add_argument('--data-images', type=int, default=10000, help='overhead: images per timed data-path epoch')
    p.add_argument('--workers', type=int, nargs='+', default=[0, 1, 2], help="overhead: fastai's per-item worker counts")
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--presets', nargs='*', default=None, help='memory: presets (default: all)')
    p.add_argument('--bs', type=int, default=128, help='memory: batch size')
    p.add_argument('--arch-kw', default=None, help='profile: model options as JSON')
    p.add_argument('--widths', type=float, nargs='+', default=[0.75, 1.0, 1.25, 1.5], help='throughput: widths of the recipe\'s net')
    p.add_argument('--bss', type=int, nargs='+', default=[128, 256, 512], help='throughput: batch sizes')
    p.add_argument('--images', type=int, default=3072, help='throughput: training images per timed epoch')
    p.add_argument('--ideas', nargs='+', default=list(IDEAS), choices=list(IDEAS), help='ideas: the arms to run')
    p.add_argument('--baseline-from', default=None, help="ideas: a `speedrun` JSON of the recipe as it is, whose clean runs become the baseline arm")
    p.add_argument('--max-other', type=float, default=0.02, help='cores other processes may use during a timed run before it counts as loaded (a few hundredths of a core already slow a 2-thread run)')
    p.add_argument('--loaded-ok', action='store_true', help="start runs without waiting for an idle machine (the loaded-machine test)")
    p.add_argument('--out', default=None, help='JSON file (default: bench/results/<part>-cpu-<date>.json)')
    p.add_argument('--note', default=None, help='a remark recorded in the JSON (e.g. what else ran on the machine)')
    args = list(sys.argv[1:] if argv is None else argv)
    cut = args.index('--') if '--' in args else len(args)  # after `--`: more `dynblocks train` options (smoke tests)
    a = p.parse_args(args[:cut])
    if a.part == 'ablation' and not 0 < a.n_valid <= 1000: p.error(f'--n-valid {a.n_valid}: give 1 to 1000 (test images from 1000 on are JPEG copies, not the exact 1k)')
    a.extra = args[cut+1:]
    {'speedrun': speedrun, 'ideas': ideas, 'profile': profile, 'throughput': throughput, 'mainjob': mainjob, 'ablation': ablation, 'overhead': overhead, 'memory': memory}[a.part](a, argv)


if __name__ == '__main__': main()
