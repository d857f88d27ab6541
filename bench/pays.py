"""Does the dynamic block pay? One study: each block option alone, the best combination, and three static baselines.

    python bench/pays.py run --budget speedrun [--arms twin reports ...] [--seeds 0 1 2]   # appends to the JSON
    python bench/pays.py run --budget x4 --arms twin twin_start                           # the twin and the best dynamic arm
    python bench/pays.py summary                                                          # recomputes the summary

Every arm trains `dyn_cpu`'s layout (whitening stem, three groups of conv + pool + block, 32-128-128 channels) with the
`cpu10` recipe, as a user types it: one `dynblocks train --recipe cpu10 --n-valid 1000 --arch-kw ...` process per run,
so imports, data, training, flip TTA and the run folder count in its wall time. fastai's xresnet18 is trained as a
fastai user would (`Learner(dls, xresnet18(n_out=10), metrics=accuracy).fit_one_cycle(epochs, 3e-3)`) on the same
data path, augmentation, images and epochs. Budgets: `speedrun` is the `cpu10` recipe's images and epochs when the study began (3 passes over
a stratified 45,000; `SPEEDRUN`); `x4` is four times the passes. Accuracy is on the exact CIFAR-10 test images 0-999, with and
without flip TTA; each run records its attention health (uniform, collapsed, per-sample per block; see
`BranchWeights`), its parameters, its training and inference FLOPs (inference: linear branches mixed per sample).

Honest timing: runs go one at a time. Around each run the script reads the load averages and /proc/stat, and
subtracts the run's own CPU time (from the kernel's accounting of the child) from the machine's busy time: a run
during which other processes used more than `--max-other` cores on average is marked `loaded` and left out of the
summary (rerun it: `run` redoes loaded runs and skips clean ones). Each invocation judges every row in the file against its
own bar (the rows keep `other_cores`), so one bar holds for the whole study. Before each run it waits for an idle machine (and
while /tmp/dynblocks-bench.pause exists: touch it to run something else between runs), and holds
/tmp/dynblocks-bench.lock during the run. The JSON is rewritten after every run.
"""
from __future__ import annotations
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from bench import machine, RESULTS, wait_for_idle, load_start, load_record, LOCK  # noqa: E402
from speedrun import _save, _stats  # noqa: E402

OUT = RESULTS/'pays-cpu.json'
# the `cpu10` recipe's images and passes when the study began (the recipe now plans its passes from a 600 s budget): fixed
# here so that every run of the study trains the same amount
SPEEDRUN = dict(epochs=3, n_train=45_000)
STUDY_TTA = {'tta': 'flip'}  # the study's TTA when it began (the recipe's own is now multi-crop): every arm scored alike
BUDGETS = dict(speedrun=1, x4=4)  # passes over the recipe's images, as a multiple of the recipe's epochs
REPORTS = dict(n_branches=2, norm='branch', act='branch', start='random', router='linear', gate='softmax')  # the reports' block
LINEAR = dict(norm='after', act='after')  # branches linear up to the sum: BatchNorm and GELU after it

# The arms are data: a model (the `dyn_cpu` layout with these options), or fastai's xresnet18. `kw` are `dyn_cpu`
# options; `recipe` are recipe overrides; `width='train_flops:ARM'` widens a static net to ARM's training FLOPs, and
# `time='ARM'` gives a static net as many passes as fit in ARM's training seconds.
ARMS = {
    'twin': dict(what='static twin: one branch per block, same widths (equal inference FLOPs once kernels are mixed)',
                 kw=dict(n_branches=1)),
    'static_flops': dict(what="static, width raised to the dynamic arms' training FLOPs (every dynamic arm has the same)",
                         kw=dict(n_branches=1), width='train_flops:best'),
    'twin_time': dict(what="static twin given the training seconds of the best dynamic arm at the same budget (more passes)",
                      kw=dict(n_branches=1), time='best_dynamic'),
    'xresnet18': dict(what="fastai's xresnet18: Learner(dls, xresnet18(n_out=10), metrics=accuracy).fit_one_cycle(epochs, 3e-3)",
                      fastai=True),
    'reports': dict(what="the reports' block: 2 branches of conv-BN-GELU, softmax of one Linear, independent random kernels",
                    kw=REPORTS),
    'anneal': dict(what='+ softmax temperature annealed from 30 to 1 over the first 30 % of batches', kw=REPORTS,
                   recipe=dict(anneal=30.)),
    'mlp_router': dict(what='+ reduction-MLP router with BatchNorm', kw={**REPORTS, 'router': 'mlp'}),
    'sigmoid': dict(what='+ sigmoid gates (scaled by 2/L)', kw={**REPORTS, 'gate': 'sigmoid'}),
    'linear': dict(what='+ linear branches: BatchNorm and GELU after the weighted sum', kw={**REPORTS, **LINEAR}),
    'twin_start': dict(what='+ twin start: shared kernel plus zero-mean residuals, zero router', kw={**REPORTS, 'start': 'twin'}),
    'last_stage': dict(what='+ only the last group dynamic (the others one branch)', kw={**REPORTS, 'dynamic': [2]}),
    'best': dict(what='linear branches + twin start (`BEST`: the two options that helped most in the screening runs that '
                      'preceded the study, and the pair that keeps kernels mixable at inference)', kw=None),
    'uniform': dict(what='the best combination with its attention held at uniform (temperature 1000): what the attention adds',
                    kw='best', extra=dict(temperature=1000.)),
    'twin_lr': dict(what='static twin at 1.5 times the recipe\'s learning rate (0.3): what a larger step alone does',
                    kw=dict(n_branches=1), recipe=dict(lr=0.3)),
}
BEST = {**REPORTS, **LINEAR, 'start': 'twin'}  # chosen before the single-option arms had all run (see the 'best' arm's text)


def _arm(name):
    a = dict(ARMS[name])
    if 'kw' in a and a['kw'] in (None, 'best'): a['kw'] = {**BEST, **a.get('extra', {})}  # xresnet18 has no `kw`: no dyn_cpu options
    return a


def _flops(kw):
    "(training FLOPs per image: forward + backward as 3x the fused forward, inference FLOPs per image: kernels mixed, parameters)"
    import torch
    from dynblocks.models import create_model, count_flops
    from dynblocks.block import set_impl
    torch.manual_seed(0)
    m = create_model('dyn_cpu', **kw)
    train = 3*count_flops(m)
    return train, count_flops(set_impl(m, 'aggregate')), sum(p.numel() for p in m.parameters())


def _xresnet_flops():
    import torch
    from fastai.vision.models.xresnet import xresnet18
    from dynblocks.models import count_flops
    torch.manual_seed(0)
    m = xresnet18(n_out=10)
    f = count_flops(m)
    return 3*f, f, sum(p.numel() for p in m.parameters())


def _width_for(target, kw):
    "Width of the static `dyn_cpu` whose training FLOPs are closest to `target`"
    return min((w/100 for w in range(100, 251, 5)), key=lambda w: abs(_flops({**kw, 'width': w})[0] - target))


_XRES = """
import json, sys, time
t0 = time.time()
from fastai.learner import Learner
from fastai.metrics import accuracy
from fastai.vision.models.xresnet import xresnet18
from fastai.torch_core import set_seed
from dynblocks.cifar import load_cifar10
from dynblocks.data import cifar10_dls
from dynblocks.recipes import recipe
import dynblocks.callbacks  # flip_tta
a = json.loads(sys.argv[1])
r = recipe('cpu10')
dls = cifar10_dls(load_cifar10(a['data'], download=False), bs=r.bs, aug=r.aug, stats=r.stats, n_train=a['n_train'],
                  n_valid=1000, seed=a['seed'])
set_seed(a['seed'], reproducible=True)
learn = Learner(dls, xresnet18(n_out=10), metrics=accuracy)
t = time.time()
with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(a['epochs'], 3e-3)
wall = time.time() - t
with learn.no_bar(), learn.no_logging(): p, y = learn.flip_tta()
print(json.dumps(dict(final_accuracy=float(learn.recorder.values[-1][-1]), tta_accuracy=float((p.argmax(1) == y).float().mean()),
                      wall_s=round(wall, 1), run_s=round(time.time() - t0, 1), attention=[])))
"""


def one_run(arm, budget, seed, a, res):
    "Train one arm at one budget and seed in a fresh process; the row for the JSON"
    spec = _arm(arm)
    epochs, n_train = SPEEDRUN['epochs']*BUDGETS[budget], SPEEDRUN['n_train']
    if a.smoke: epochs, n_train = 1, 500  # the code path on tiny settings (tests/test_bench.py), not a measurement
    kw = dict(spec.get('kw') or {})
    if 'width' in spec:  # widen to another arm's training FLOPs
        _, ref = spec['width'].split(':')
        kw['width'] = _width_for(_flops(_arm(ref)['kw'])[0], kw)
    time_of = None
    if 'time' in spec:  # as many passes as fit in another arm's training seconds (rounded to whole passes)
        time_of = spec['time']
        if time_of == 'best_dynamic':  # the arm the verdict compares with: the best dynamic arm measured at this budget so far
            time_of = summarise(dict(res))['verdict'].get(budget, {}).get('best_dynamic')
        ref, mine = _summary_of(res, time_of, budget, 'train_s'), _summary_of(res, 'twin', budget, 'train_s')
        if ref is None or mine is None: sys.exit(f"{arm}: run a dynamic arm and 'twin' at budget {budget} first (their times set this arm's passes).")
        epochs = max(epochs, round(epochs*ref/mine))
    flops = _xresnet_flops() if spec.get('fastai') else _flops(kw)
    t0, busy0, child0, load0 = load_start()
    with tempfile.TemporaryDirectory() as d:
        if spec.get('fastai'):
            cmd = [sys.executable, '-c', _XRES, json.dumps(dict(data=str(a.data_path), n_train=n_train, epochs=epochs, seed=seed))]
        else:
            cmd = [sys.executable, '-m', 'dynblocks', 'train', '--recipe', 'cpu10', '--n-valid', '1000', '--data', str(a.data_path),
                   '--seed', str(seed), '--epochs', str(epochs), '--n-train', str(n_train), '--out', f'{d}/run', '--quiet',
                   '--recipe-kw', json.dumps(STUDY_TTA)]
            if kw.get('n_branches'): cmd += ['--n-branches', str(kw['n_branches'])]
            if kw.get('width'): cmd += ['--width', str(kw['width'])]
            rest = {k: v for k, v in kw.items() if k not in ('n_branches', 'width')}
            if rest: cmd += ['--arch-kw', json.dumps(rest)]
            for k, v in (spec.get('recipe') or {}).items(): cmd += [f'--{k}', str(v)]
        p = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.time() - t0
        if p.returncode: sys.exit(f"{arm} seed {seed} failed:\n{p.stderr[-3000:]}")
        s = json.loads(p.stdout.strip().splitlines()[-1]) if spec.get('fastai') else json.loads(Path(f'{d}/run/summary.json').read_text())
    return dict(arm=arm, budget=budget, seed=seed, epochs=epochs, n_train=n_train, kw=kw, recipe=spec.get('recipe') or {},
                **({'time_of': time_of} if time_of else {}),
                acc=s['final_accuracy'], acc_tta=s['tta_accuracy'], train_s=s['wall_s'], run_s=round(wall, 1),
                train_flops=flops[0], infer_flops=flops[1], params=flops[2],
                attention=s.get('attention') or [], **load_record(t0, busy0, child0, load0, a.max_other))


def _clean(res, arm=None, budget=None):
    return [x for x in res['runs'] if not x['loaded'] and (arm is None or x['arm'] == arm) and (budget is None or x['budget'] == budget)]


def _summary_of(res, arm, budget, key):
    v = [x[key] for x in _clean(res, arm, budget)]
    return sum(v)/len(v) if v else None


def summarise(res):
    "Mean and spread per arm and budget (clean runs only), and the verdict against the issue's bar"
    out = {}
    for budget in BUDGETS:
        for arm in ARMS:
            rows = _clean(res, arm, budget)
            if not rows: continue
            states = [[b['state'] for b in x['attention']] for x in rows]
            out.setdefault(budget, {})[arm] = dict(
                what=_arm(arm)['what'], kw=rows[0]['kw'], recipe=rows[0]['recipe'], n=len(rows), seeds=[x['seed'] for x in rows],
                acc_tta=_stats([x['acc_tta'] for x in rows]), acc=_stats([x['acc'] for x in rows]),
                train_s=_stats([x['train_s'] for x in rows]), run_s=_stats([x['run_s'] for x in rows]),
                epochs=rows[0]['epochs'], n_train=rows[0]['n_train'], train_flops=rows[0]['train_flops'],
                infer_flops=rows[0]['infer_flops'], params=rows[0]['params'], attention=states[-1] if states else [])
    verdict = {}
    for budget, arms in out.items():
        dyn = [k for k in arms if k not in ('twin', 'static_flops', 'twin_time', 'xresnet18', 'twin_lr', 'uniform')]
        if 'twin' not in arms or not dyn: continue
        tw = arms['twin']['acc_tta']
        best = max(dyn, key=lambda k: arms[k]['acc_tta']['mean'])
        b = arms[best]['acc_tta']
        v = dict(best_dynamic=best, gain_vs_twin=b['mean'] - tw['mean'], spreads_overlap=b['min'] <= tw['max'],
                 bar_equal_epochs=b['mean'] - tw['mean'] >= 0.01 and b['min'] > tw['max'])
        if 'twin_time' in arms:
            tt = arms['twin_time']['acc_tta']
            spread = max(b['max'] - b['min'], tt['max'] - tt['min'])
            v.update(gain_vs_twin_time=b['mean'] - tt['mean'], seed_spread=spread, bar_equal_time=b['mean'] >= tt['mean'] - spread)
        verdict[budget] = v
    res['summary'], res['verdict'] = out, verdict
    return res


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('part', choices=['run', 'summary'])
    p.add_argument('--budget', choices=list(BUDGETS), default='speedrun')
    p.add_argument('--arms', nargs='+', default=['twin', 'xresnet18', 'reports', 'anneal', 'mlp_router', 'sigmoid', 'linear', 'twin_start', 'last_stage'], choices=list(ARMS))
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--data', default=None, help='CIFAR-10 folder (default: as `dynblocks train` finds it)')
    p.add_argument('--max-other', type=float, default=0.03, help="cores other processes may use on average during a run before it counts as loaded: "
                   "0.03 cores stretch a 2-thread run by at most 1.5 %%, and this machine's own kernel threads use up to about 0.02 during a run (the rows' other_cores)")
    p.add_argument('--out', default=str(OUT))
    p.add_argument('--smoke', action='store_true', help='1 pass over 500 images per run: checks the code path, measures nothing')
    a = p.parse_args(argv)
    out = Path(a.out)
    res = json.loads(out.read_text()) if out.exists() else dict(what='pays', runs=[])
    for x in res['runs']: x.update(max_other=a.max_other, loaded=x['other_cores'] > a.max_other)  # one bar for every row
    if a.part == 'summary':
        _save(out, summarise(res)); print(json.dumps(res['verdict'], indent=1)); return
    import fastai
    from dynblocks.train import resolve_data
    a.data_path, desc = resolve_data(a.data)
    if 'sample' in desc: sys.exit(f"pays.py needs real CIFAR-10 (--data DIR or DYNBLOCKS_DATA), not {desc}.")
    m = machine(); m['fastai'] = fastai.__version__
    res.update(machine=m, data=desc, best=BEST, arms={k: _arm(k) for k in ARMS}, budgets=BUDGETS,
               command='python bench/pays.py ' + ' '.join(argv if argv is not None else sys.argv[1:]))
    res.setdefault('commands', []).append(res['command'])
    for seed in a.seeds:  # every arm for one seed before the next seed: a drift in the machine hits all arms alike
        for arm in a.arms:
            done = [x for x in res['runs'] if (x['arm'], x['budget'], x['seed']) == (arm, a.budget, seed)]
            if any(not x['loaded'] for x in done): continue  # a clean run is kept; a loaded one is redone
            if not a.smoke: wait_for_idle(a.max_other)  # a smoke run measures nothing: no waiting
            if not a.smoke: LOCK.write_text(f'{arm} {a.budget} seed {seed}')  # helpers and tests wait while it exists
            try: row = one_run(arm, a.budget, seed, a, res)
            finally:
                if not a.smoke: LOCK.unlink(missing_ok=True)
            res['runs'] = [x for x in res['runs'] if (x['arm'], x['budget'], x['seed']) != (arm, a.budget, seed)] + [row]
            _save(out, summarise(res))
            print(json.dumps({k: row[k] for k in ('arm', 'budget', 'seed', 'acc', 'acc_tta', 'train_s', 'run_s', 'other_cores', 'loaded')}), flush=True)
    _save(out, summarise(res)); print(json.dumps(res['verdict'], indent=1))


if __name__ == '__main__': main()
