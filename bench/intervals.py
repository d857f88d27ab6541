"""The paired interval checked against known answers: coverage and false positives over simulated studies, the old and
a bootstrap method beside it, sequential looks, and the committed studies replayed under the sequential rule.

    python bench/intervals.py [--studies 2000] [--out bench/results/intervals-sim.json]

Writes one JSON (command, machine, versions, date) that the Measure and Compare pages read. Seconds of CPU, no data.
"""
from __future__ import annotations
import argparse, json, os, sys, time
from pathlib import Path
import numpy as np
from dynblocks.measure import coverage, paired_interval, simulate_study, true_difference, look_level, decide, machine
from dynblocks.compare import load_config, read_results
from dynblocks.arms import _stack

def independent_bootstrap(a, b, n=500, seed=0, level=0.95):
    "The interval `paired_interval` used before 2026-12-07: images resampled jointly, each arm's seeds resampled independently"
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    rng, N, diffs = np.random.default_rng(seed), a.shape[1], []
    for k in range(0, n, 100):
        m = min(100, n - k)
        wa = rng.multinomial(len(a), [1/len(a)]*len(a), m)/len(a)
        wb = rng.multinomial(len(b), [1/len(b)]*len(b), m)/len(b)
        wi = rng.multinomial(N, [1/N]*N, m)/N
        diffs.append(((wa @ a - wb @ b)*wi).sum(1))
    d, q = np.concatenate(diffs), (1 - level)/2
    return 100*float(a.mean() - b.mean()), 100*float(np.quantile(d, q)), 100*float(np.quantile(d, 1 - q))

def joint_bootstrap(a, b, n=500, seed=0, level=0.95):
    "Paired by seed: seeds resampled (the same draw for both arms) and images resampled, jointly (a percentile interval)"
    D = np.asarray(a, np.float32) - np.asarray(b, np.float32)
    rng, (S, N), diffs = np.random.default_rng(seed), D.shape, []
    for k in range(0, n, 100):
        m = min(100, n - k)
        ws = rng.multinomial(S, [1/S]*S, m)/S
        wi = rng.multinomial(N, [1/N]*N, m)/N
        diffs.append(((ws @ D)*wi).sum(1))
    d, q = np.concatenate(diffs), (1 - level)/2
    return 100*float(D.mean()), 100*float(np.quantile(d, q)), 100*float(np.quantile(d, 1 - q))

SETTINGS = {  # name: simulate_study's arguments (10,000 test images as CIFAR-10's)
    'no effect, small seed noise (5 seeds)': dict(seeds=5, images=10000, seed_sd=0.02),
    'no effect, large seed noise (5 seeds)': dict(seeds=5, images=10000, seed_sd=0.15),
    'an effect, small seed noise (5 seeds)': dict(seeds=5, images=10000, seed_sd=0.02, effect=0.05),
    'an effect, large seed noise (3 seeds)': dict(seeds=3, images=10000, seed_sd=0.15, effect=0.1),
}
METHODS = {'paired_interval (seed × image variance components, t)': (paired_interval, 1),
           'joint bootstrap (paired seeds and images)': (joint_bootstrap, 10),  # 500 resamples a study: 10× fewer studies
           'independent bootstrap (used before)': (independent_bootstrap, 10)}

def sequential_fpr(studies, looks=(3, 4, 5), seed=1, corrected=True):
    "How often a study with no effect, looked at after each number of seeds in `looks`, ever reads a gain or a loss"
    rng, hits = np.random.default_rng(seed), 0
    level = look_level(0.95, len(looks)) if corrected else 0.95
    for _ in range(studies):
        A, B = simulate_study(rng, seeds=looks[-1], images=10000, seed_sd=0.05)
        hits += any(decide(*paired_interval(A[:s], B[:s], level)[1:]) in ('gain', 'loss') for s in looks)
    return hits/studies

def replay(folder, first=3):
    "The committed comparison in `folder` under the sequential rule: start with `first` seeds, one more per round up to all it ran"
    cfg, (done, _) = load_config(folder), read_results(folder)
    seeds = sorted({r['seed'] for r in done.values() if r['kind'] == 'final' and r['arm'] == cfg.baseline})
    if len(seeds) <= first: return None
    level, arms = look_level(0.95, len(seeds) - first + 1), [a.name for a in cfg.arms if a.name != cfg.baseline]
    for k in range(first, len(seeds) + 1):
        B = _stack(cfg, done, cfg.baseline, seeds[:k])
        dec = {a: decide(*paired_interval(_stack(cfg, done, a, seeds[:k]), B, level)[1:], 0.5) for a in arms}
        if all(dec.values()) or k == len(seeds): break
    n = len(cfg.arms)
    return dict(seeds_run=len(seeds), seeds_needed=k, final_runs=n*len(seeds), final_runs_needed=n*k, decisions=dec, level=level, margin=0.5)

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--studies', type=int, default=2000)
    ap.add_argument('--out', default='bench/results/intervals-sim.json')
    args = ap.parse_args()
    t0, load0 = time.time(), os.getloadavg()
    cov = {}
    for name, kw in SETTINGS.items():
        cov[name] = {'truth': round(true_difference(**{'effect': 0., **kw}), 3)}
        for m, (f, slow) in METHODS.items():
            t = time.time()
            c = coverage(f, studies=args.studies//slow, **kw)
            cov[name][m] = dict(coverage=round(c['coverage'], 4), half_width=round(c['half_width'], 3), sd=round(c['sd'], 3),
                                studies=c['studies'], seconds=round(time.time() - t, 1))
            print(name, '|', m, cov[name][m], flush=True)
    seq = dict(looks=[3, 4, 5], corrected=sequential_fpr(args.studies), uncorrected=sequential_fpr(args.studies, corrected=False),
               studies=args.studies)
    print('sequential', seq)
    root = Path(__file__).parent/'results'
    rep = {str(f.relative_to(root)): replay(f) for f in (root/'pays'/'speedrun', root/'pays'/'x4', root/'cpu10-choice')}
    print('replay', rep)
    out = dict(command='python ' + ' '.join(sys.argv), machine=machine(), date=time.strftime('%Y-%m-%d'), seconds=round(time.time() - t0),
               load_before=[round(x, 2) for x in load0], load_after=[round(x, 2) for x in os.getloadavg()],
               settings=SETTINGS, coverage=cov, sequential=seq, replay=rep)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print('wrote', args.out)
