"""Does the dynamic block pay? The study, as arms handed to `dynblocks compare` (`dynblocks.compare`).

    python bench/pays.py plan --budget speedrun   # its runs, and the hours they take from the first study's seconds
    python bench/pays.py run --budget speedrun    # the twin, static_flops, every dynamic idea screened by its sweep on
                                                  # held-out training images (the three best get final runs), and the twin
                                                  # given the seconds of the dynamic arm the validation ranks first
    python bench/pays.py run --budget x4          # the twin, static_flops, the dynamic arm the speedrun's validation ranked
                                                  # first, and the twin given that arm's seconds; every lr swept at x4

The re-run of issue 52 writes to `--out bench/results/pays-next` until it completes (the pages read
`bench/results/pays/`). Its work folder may not survive the machine: `--reuse DIR` first copies every run that the
repository's copy of this very comparison finished, so a study goes on on a fresh machine:

    python bench/pays.py run --budget speedrun --data DIR --out bench/results/pays-next --reuse bench/results/pays-next/speedrun

The arms pin PyTorch's init (`init=None`): `cpu10` took the Dirac init on 2026-12-06, and its re-read may drop it again.
No run of the first re-run is reused: its arms trained with lr 0.2 as the recipe's (now 0.3), so its sweep runs are
not runs of this comparison although the arms' names and options match.

Every arm trains `dyn_cpu`'s layout (whitening stem, three groups of conv + pool + block, 32-128-128 channels) with the
`cpu10` recipe and flip TTA (as the first study) on a stratified 45,000 of the training images: `speedrun` is 3 passes,
`x4` 12. Each arm's learning rate is chosen by `compare`'s sweep (0.7, 1 and 1.5 times the recipe's, 2 passes, seed 0)
on 10 % of those images held out; the final runs are 5 seeds on all 10,000 test images, the first 1,000 (exact) scored
apart from the 9,000 JPEG copies. `compare` waits for an idle machine before each run (other processes under 0.03
cores) and marks a run beside more as loaded. The study's folder (its run folders: checkpoints and models) lives
outside the repository (`--work`); after every run its `compare.json`, `results.jsonl`, `summary.json` and
`pareto.png` are copied to `bench/results/pays/<budget>/`, which the page reads. The first study
(`bench/results/pays-cpu.json`: 14 arms, 3 seeds, only the twin tuned) named the ideas; its choice of three, made on
test images, is not used: every idea is screened again here on held-out training images. Final runs: 3 seeds, then one
more per round up to 5 while an interval against the twin neither excludes zero nor lies inside ±0.5 points
(`compare`'s sequential rule, its level spent over the looks). Every sweep is extended past an edge it chose (at most
three geometric steps, the cap said).
"""
from __future__ import annotations
import argparse, json, shutil, sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from bench import RESULTS  # noqa: E402

FIRST = RESULTS/'pays-cpu.json'  # the first study: its speedrun means choose the three dynamic arms re-run here
OUT = RESULTS/'pays'  # bench/results/pays/<budget>/: what the page reads
PASSES = dict(speedrun=3, x4=12)
N_TRAIN, SEEDS, MAX_SEEDS, MARGIN, EXACT, KEEP = 45_000, [0, 1, 2], 5, 0.5, 1000, 3
TWIN = dict(n_branches=1, norm='branch', act='branch', init=None)  # the static twin as the study first ran it (the presets' and cpu10's defaults may change)
RECIPE = dict(recipe='cpu10', recipe_kw=dict(tta='flip'))
REPORTS = dict(n_branches=2, norm='branch', act='branch', start='random', router='linear', gate='softmax', init=None)  # the reports' block, PyTorch's init
LINEAR = dict(norm='after', act='after')  # branches linear up to the sum: BatchNorm and GELU after it
DYNAMIC = {  # the first study's dynamic arms: `dyn_cpu` options, recipe fields, and what each is
    'reports': (REPORTS, {}, "the reports' block: 2 branches of conv-BN-GELU, softmax of one Linear, independent random kernels"),
    'anneal': (REPORTS, dict(anneal=30.), '+ softmax temperature annealed from 30 to 1 over the first 30 % of batches'),
    'mlp_router': ({**REPORTS, 'router': 'mlp'}, {}, '+ reduction-MLP router with BatchNorm'),
    'sigmoid': ({**REPORTS, 'gate': 'sigmoid'}, {}, '+ sigmoid gates (scaled by 2/L)'),
    'linear': ({**REPORTS, **LINEAR}, {}, '+ linear branches: BatchNorm and GELU after the weighted sum'),
    'twin_start': ({**REPORTS, 'start': 'twin'}, {}, '+ twin start: shared kernel plus zero-mean residuals, zero router'),
    'last_stage': ({**REPORTS, 'dynamic': [2]}, {}, '+ only the last group dynamic (the others one branch)'),
    'best': ({**REPORTS, **LINEAR, 'start': 'twin'}, {}, 'linear branches + twin start'),
}


def static_width(dyn_kw):
    "Width of the one-branch `dyn_cpu` whose FLOPs are closest to the dynamic arm's (the library's `same_flops_width`)"
    from dynblocks.models import create_model, count_flops, same_flops_width
    return same_flops_width('dyn_cpu', count_flops(create_model('dyn_cpu', **dyn_kw)), **TWIN)


def arm(name, kw, recipe_kw=None, what='', **extra):
    from dynblocks.arms import Arm
    return Arm(name, 'dyn_cpu', kw, RECIPE['recipe'], {**RECIPE['recipe_kw'], **(recipe_kw or {})}, what=what, **extra)


def first_three() -> list:
    "The first study's three best dynamic arms at the speedrun budget (its means: chosen there on the test set, re-judged here)"
    s = json.loads(FIRST.read_text())['summary']['speedrun']
    return sorted((a for a in s if a in DYNAMIC), key=lambda a: -s[a]['acc_tta']['mean'])[:3]


def config(budget:str, root:Path, data=None, smoke=False):
    "The comparison of `budget`: arms as data, for `dynblocks.compare` (x4 reads the speedrun comparison's choices in `root`)"
    from dynblocks.arms import CompareConfig
    from dynblocks.compare import summarize
    width = static_width(REPORTS)  # every two-branch arm has the same training FLOPs
    twin = arm('twin', dict(TWIN), what='static twin: one branch per block, same widths')
    flops = arm('static_flops', dict(TWIN, width=width), what=f"static, width {width}: the dynamic arms' training FLOPs")
    if budget == 'speedrun':  # every idea a candidate, screened on held-out training images; the KEEP best get final runs
        ideas = list(DYNAMIC)[:2] if smoke else list(DYNAMIC)
        arms = [twin, flops] + [arm(n, DYNAMIC[n][0], DYNAMIC[n][1], DYNAMIC[n][2], screen=True) for n in ideas] + \
               [arm('twin_time', dict(TWIN), what="static twin given the seconds of the dynamic arm the validation ranks first", time_of='best_valid')]
    else:  # x4: the dynamic arm the speedrun's validation ranked first; every arm's lr swept again at x4
        s = summarize(root/'speedrun') if not smoke else None
        best = s['best_dynamic_by_valid'] if s else first_three()[0]
        if best is None: raise SystemExit("x4 takes the dynamic arm the speedrun's validation ranks first: its screen is not done yet.")
        kw, rk, what = DYNAMIC[best]
        arms = [twin, flops, arm(best, kw, rk, what), arm('twin_time', dict(TWIN), what=f"static twin given {best}'s seconds", time_of=best)]
    if smoke:  # the code path on tiny settings (tests/test_bench.py), not a measurement
        return CompareConfig(arms, seeds=[0], passes=1, data=data, n_train=500, exact=100, baseline='twin',
                             lr_factors=[1.0], sweep=1., valid=0.2, latency=False, extend=0, keep=1 if budget == 'speedrun' else None)
    return CompareConfig(arms, seeds=SEEDS, passes=PASSES[budget], data=data, n_train=N_TRAIN, exact=EXACT, baseline='twin',
                         lr_factors=[0.7, 1.0, 1.5], sweep=2/3, valid=0.1, max_other=0.03, max_seeds=MAX_SEEDS, margin=MARGIN,
                         keep=KEEP if budget == 'speedrun' else None)


def reuse(src:Path, folder:Path, cfg):
    "Copy into `folder`'s results every run the repository's copy of this very comparison (`src`) finished: a study goes on on a fresh machine"
    from dynblocks.compare import load_config, read_results
    if load_config(src).to_dict() != cfg.to_dict(): sys.exit(f"{src} holds another comparison: --reuse takes the repository's copy of this one.")
    done, have = read_results(src)[0], (read_results(folder)[0] if (folder/'results.jsonl').exists() else {})
    new = [r for i, r in done.items() if i not in have]
    with open(folder/'results.jsonl', 'a') as f: f.writelines(json.dumps(r) + '\n' for r in new)
    return len(new)


def sync(folder:Path, dest:Path):
    "Copy what the page reads (configuration, results, summary, plot) from the study's folder into the repository"
    from dynblocks.compare import summarize, plot_pareto
    import matplotlib.pyplot as plt
    dest.mkdir(parents=True, exist_ok=True)
    s = summarize(folder)
    (folder/'summary.json').write_text(json.dumps(s, indent=1))
    if any(a['acc'] for a in s['arms'].values()): plot_pareto(s, folder/'pareto.png'); plt.close('all')
    for f in ('compare.json', 'results.jsonl', 'summary.json', 'pareto.png'):
        if (folder/f).exists(): shutil.copyfile(folder/f, dest/f)
    return s


def plan(budget:str, root:Path):
    "Each run of the study and its expected seconds, from the first study's mean seconds per arm (same machine kind; its speed varies by day)"
    from dynblocks.arms import jobs
    if budget == 'x4' and not (root/'speedrun'/'compare.json').exists(): return print("x4 takes the speedrun comparison's choices: run that first.")
    c, ref = config(budget, root), json.loads(FIRST.read_text())['summary'][budget]
    per_pass = lambda name: ref.get(name, ref['twin'])['train_s']['mean']/PASSES[budget]  # a new arm: the twin's speed
    total, rows = 0., []
    for j in jobs(c):
        if j['kind'] == 'latency': secs = c.latency_s
        else:
            a = c.arm(j['arm'])
            passes = round(c.passes*c.sweep) if j['kind'] == 'sweep' else c.passes
            secs = per_pass(a.name if a.time_of is None or a.time_of == 'best_valid' else a.time_of)*passes + 45  # + data, TTA over 10,000 images, the run folder
        total += secs; rows.append((j['id'], round(secs)))
    for i, s in rows: print(f"{i:<32}{s:>7} s")
    print(f"{len(rows)} runs known now, about {total/3600:.1f} h at the first study's speed"
          + (" (the screened ideas' final runs are known once the screen is done)" if any(a.screen for a in c.arms) else ""))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('part', choices=['run', 'plan', 'sync'])
    p.add_argument('--budget', choices=list(PASSES), default='speedrun')
    p.add_argument('--data', default=None, help='CIFAR-10 folder (default: as `dynblocks train` finds it)')
    p.add_argument('--work', default=None, help="the studies' folder, outside the repository (default: /tmp/dynblocks-pays)")
    p.add_argument('--out', default=str(OUT), help='where the page reads the results (default: bench/results/pays)')
    p.add_argument('--only', nargs='+', choices=['sweep', 'final', 'latency'], default=None,
                   help="take only these runs (e.g. latency, timed on the final runs' folders on this machine)")
    p.add_argument('--smoke', action='store_true', help='1 pass over 500 images per run: checks the code path, measures nothing')
    p.add_argument('--reuse', default=None, help="the repository's copy of this comparison (bench/results/pays-next/<budget>): its finished runs are copied, not run again")
    a = p.parse_args(argv)
    root = Path(a.work or '/tmp/dynblocks-pays')
    folder, dest = root/a.budget, Path(a.out)/a.budget
    if a.part == 'plan': return plan(a.budget, root)
    if a.part == 'sync': return sync(folder, dest)
    from dynblocks.compare import compare, run_worker, load_config
    from dynblocks.train import resolve_data
    if not a.smoke and 'sample' in resolve_data(a.data)[1]: sys.exit("pays.py needs real CIFAR-10 (--data DIR or DYNBLOCKS_DATA), not the sample.")
    c = load_config(folder) if (folder/'compare.json').exists() else config(a.budget, root, a.data, a.smoke)
    compare(c, folder, work=False)  # writes (or checks) the configuration
    if a.reuse: print(f"{reuse(Path(a.reuse), folder, c)} runs reused from {a.reuse}")
    def say(line):
        print(line, flush=True)
        sync(folder, dest)  # every finished run reaches the repository's copy at once
    run_worker(c, folder, say, **({'kinds': tuple(a.only)} if a.only else {}))
    s = sync(folder, dest)
    print(json.dumps({k: v.get('vs_baseline', {}).get('verdict') for k, v in s['arms'].items()}, indent=1))
    return s


if __name__ == '__main__': main()
