"""The sentences the docs build from `bench/results/pays-cpu.json` (`bench/pays.py`'s study).

One builder for the study's page (`nbs/20_pays.ipynb`) and the index (`nbs/index.ipynb`, hence the README), so that
the two never say different things about the same runs. Each function takes the study's JSON as loaded (`P`).
"""
from __future__ import annotations

def pct(x): return f"{100*x:.1f}"
def pts(x):
    "A difference of accuracies in points, signed ('+0.0', never '-0.0')"
    return f"{round(100*x, 1) + 0.0:+.1f}"
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
