"""Write `dynblocks/reference.json`: what dynblocks' own reference runs reached, for a budgeted run to print beside its plan.

Usage: python tools/make_reference.py [--check]

For each budgeted recipe with a committed speedrun JSON (`bench/results/speedrun-cpu-*.json`, the newest), the
medians over its seeds: the machine's speed on that net (images/s), the passes the budget planned there, the accuracy
on the exact CIFAR-10 test 1k with the recipe's TTA, and the per-pass curve (accuracy at the end of each pass, no TTA).
`dynblocks train --recipe cpu10` prints it when it plans its passes, so a user on a slower machine reads why their run
makes fewer passes and ends lower. `--check` exits 1 if the file differs from what the JSON gives (a test runs it).
"""
import json, statistics, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT/'dynblocks'/'reference.json'
_TTA = {'flip': 'flip TTA', 'flip_shift': 'multi-crop TTA'}

def reference() -> dict:
    src = sorted((ROOT/'bench'/'results').glob('speedrun-cpu-*.json'))[-1]  # the newest: the one the README quotes
    d = json.loads(src.read_text())
    runs = [r for r in d['runs'] if not r.get('loaded')]
    med = lambda k: statistics.median(r[k] for r in runs)
    n = min(len(r['epoch_acc']) for r in runs)
    return {d['args']['recipe']: dict(
        source=str(src.relative_to(ROOT)), date=d['machine']['date'], seeds=len(runs),
        images_per_s=round(med('images_per_s'), 1), passes=round(med('epochs'), 2), acc=round(med('acc_exact1k_tta'), 4),
        tta=_TTA.get(runs[0]['tta'], runs[0]['tta']) + ' on the exact test 1k',
        curve=[round(statistics.median(r['epoch_acc'][i] for r in runs), 4) for i in range(n)])}

if __name__ == '__main__':
    text = json.dumps(reference(), indent=1) + '\n'
    if '--check' in sys.argv[1:]:
        if not OUT.exists() or OUT.read_text() != text: sys.exit(f"{OUT} is not what the committed JSON gives: run python tools/make_reference.py")
    else: OUT.write_text(text); print(OUT.read_text())
