"""The sentences the docs build from `bench/results/pays-cpu.json` (`bench/pays.py`'s study) and from the re-run's summaries.

One builder for the study's page (`nbs/20_pays.ipynb`) and the index (`nbs/index.ipynb`, hence the README), so that
the two never say different things about the same runs. Each function takes the study's JSON as loaded (`P`), or a
comparison's summary (`S`, from `dynblocks.compare.summarize`): no figure here is computed from `results.jsonl` itself.
"""
from __future__ import annotations
from dynblocks.measure import signed, verdict  # the one way the pages print a difference, and the sentence an interval supports

def pct(x): return f"{100*x:.1f}"
def pts(x):
    "A difference of accuracies (fractions) in points, as `signed` prints it"
    return signed(100*x)
def spread(s):
    "A summary statistic as 'mean % (min–max)'"
    return f"{pct(s['mean'])} % ({pct(s['min'])}–{pct(s['max'])})"

def against(P, budget, arms):
    "One sentence: each static arm of `arms` ((arm, what) pairs) against the verdict's best dynamic arm at `budget`"
    s, v = P['summary'][budget], P['verdict'][budget]
    b, out = s[v['best_dynamic']], []
    for arm, what in arms:
        if arm not in s: out.append(f"{what} has not run at this budget"); continue
        a = s[arm]
        out.append(f"{what} reaches {spread(a['acc_tta'])} over {a['n']} seed{'s' if a['n'] > 1 else ''} in {a['train_s']['mean']:.0f} s "
                   f"({pts(b['acc_tta']['mean'] - a['acc_tta']['mean'])} points for {v['best_dynamic']}, which trains "
                   f"{b['train_s']['mean']/a['train_s']['mean']:.1f}× as long)")
    text = '; '.join(out)
    return text[0].upper() + text[1:] + "."

def baselines(P, budget):
    "Two sentences: the other static arms (the same training FLOPs as width, 1.5× the learning rate, xresnet18) against the best dynamic arm at `budget`"
    sf = P['summary'][budget].get('static_flops')
    width = f": one branch, width {sf['kw']['width']}" if sf else ""
    return (against(P, budget, [('static_flops', f"a static net spending the dynamic arms' training FLOPs on width instead (`static_flops`{width})")]) + " " +
            against(P, budget, [('twin_lr', 'the static twin at 1.5× the learning rate (`twin_lr`)'), ('xresnet18', "fastai's xresnet18")]) +
            " Each arm's seconds are from the day it ran.")


# ---------------------------------------------------------------- the re-run through `dynblocks compare` (bench/results/pays/<budget>/)
import json, statistics
from pathlib import Path

def study(results, budget):
    "The comparison's summary of `budget` (`bench/pays.py` copies it to `results/pays/<budget>/summary.json`), or None"
    f = Path(results)/'pays'/budget/'summary.json'
    return json.loads(f.read_text()) if f.exists() else None

def _acc(v): return f"{statistics.mean(v):.1f} ({min(v):.1f}–{max(v):.1f})" if v else '—'

def _exact(S): return next((k for k in S['subsets'] if k.startswith('exact')), None)

def _lat(a, b='1'):
    "The arm's latency at batch `b` in seconds in its faster backend (ONNX Runtime or eager), and which (`summarize`'s `best`)"
    best = ((a.get('latency') or {}).get('best') or {}).get(b)
    return (best[1], best[0]) if best else (None, None)

def lat_ratio(a, b='1'):
    "The arm's latency at batch `b` over the baseline's, each in its faster backend, with the interval paired block by block: '1.3× (1.2–1.4×)', or None"
    r = ((a.get('latency') or {}).get('vs_baseline') or {}).get(b)
    return f"{r[0]:.2f}× ({r[1]:.2f}–{r[2]:.2f}×)" if r else None

def time_ratio(a):
    "An arm's training seconds over the baseline's, seed by seed on the same machine and day (`summarize`'s `time_ratio`); None if unpaired"
    return (a.get('vs_baseline') or {}).get('time_ratio')

def interval(iv):
    "A paired difference and its interval in points, '+0.3 (−0.1 to +0.9)', each figure as `signed` prints it"
    return f"{signed(iv[0])} ({signed(iv[1])} to {signed(iv[2])})"

def rows(S):
    "One row per arm of a comparison's summary: the verdict table of the page and the README"
    ex, out = _exact(S), []
    for name, a in S['arms'].items():
        vs = a.get('vs_baseline')
        lat1, lat64 = _lat(a), _lat(a, '64')
        out.append({'arm': name, 'lr (chosen on validation)': a['lr'], 'seeds': a['n'],
                    **({f'{ex} %': _acc(a['acc'].get(ex))} if ex else {}), 'all 10k %': _acc(a['acc'].get('all')),
                    f"vs {S['baseline']}, all 10k (95 % interval)": '—' if vs is None else
                        interval(vs['interval']['all']),
                    'training time': '—' if not a['train_s'] else f"{a['train_s']:.0f} s" + (f" ({time_ratio(a):.1f}×)" if time_ratio(a) else ""),
                    'latency b1': '—' if lat1[0] is None else f"{1e3*lat1[0]:.2f} ms",
                    'latency b64': '—' if lat64[0] is None else f"{1e3*lat64[0]:.0f} ms"})
    return out

def chosen(S, Ssp=None):
    "The dynamic arm the validation ranked first: the study's own choice, or, for x4 (no sweep: it reuses the speedrun's lr), the speedrun study's"
    if S is None: return None
    b = S.get('best_dynamic_by_valid') or (Ssp or {}).get('best_dynamic_by_valid')
    return b if b in S['arms'] else None

def headline(Ssp, Sx4=None):
    "The verdict in one sentence, from the summaries' intervals: the dynamic arm the validation ranked first against the twin at each budget, and against the twin given its seconds"
    if Ssp is None: return "Not measured yet: `python bench/pays.py run --budget speedrun`."
    out = []
    for S, at, bud in ((Ssp, 'At the CPU speedrun budget', 'speedrun'), (Sx4, 'at four times the passes', 'x4')):
        b = chosen(S, Ssp)
        if b is None: continue
        a, t = S['arms'][b], S['arms'][S['baseline']]
        if not a.get('vs_baseline'): continue
        v = a['vs_baseline']['verdict']['all']
        lr1 = lat_ratio(a)
        eq = equal_time(S, b)
        who = f"the dynamic arm the validation ranks first ({b})" if not out else f"the same arm ({b}, its lr from the speedrun's sweep)" if b == chosen(Ssp) else f"the arm its validation ranks first ({b})"
        out.append(f"{at} {who} is {v} against the static twin on all 10,000 test images"
                   f" ({a['n']} and {t['n']} seeds)" + (f", at {time_ratio(a):.1f}× its training time" if time_ratio(a) else "")
                   + (f" and {lr1} its latency at batch 1" if lr1 else "")
                   + (f", and {verdict(*eq, S.get('level', 0.95))} against the twin given its seconds" if eq else "")
                   + ("" if S.get('complete') else f" (a study in progress: {S['runs']} of its {S['total']} runs done)"))
    if not out: return "Not measured yet."
    text = '; '.join(out) + '.'
    return text[0].upper() + text[1:]

def equal_time(S, arm, derived='twin_time'):
    "(difference, lower, upper) in points of `arm` against the arm given its seconds (`derived`), from the summary's own pairing, or None"
    v = (S['arms'].get(derived) or {}).get('vs_source')
    if not v or v['source'] != arm: return None
    d, lo, hi = v['interval']['all']
    return -d, -hi, -lo  # the summary pairs the derived arm against its source: turned around
