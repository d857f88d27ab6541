"""Latency checked against a known answer: two copies of one network, timed side by side by `latencies`, must read 1.00×.

    python bench/latency_aa.py [--repeats 2] [--max-s 90] [--out bench/results/latency-aa-cpu.json]

For each network (the study's static twin and a dynamic `dyn_cpu`) and each repeat: the ratio of the two copies at batch
1 and 64, PyTorch and ONNX Runtime, with its interval paired block by block (`geo_interval`), each figure's own
half-width, and the range of the ratio that single blocks read (a block alone is one instance of each copy: how the
latency was timed before blocks). Writes one JSON (command, machine, versions, load, date) that the Measure page reads.
Run it on an idle machine.
"""
from __future__ import annotations
import argparse, json, os, sys, time
from pathlib import Path
from dynblocks.models import create_model
from dynblocks.measure import latencies, geo_interval, machine

NETS = {  # name: dyn_cpu options (the speedrun study's twin and its dynamic arm with linear branches and twin start)
    'dyn_cpu twin (1 branch)': dict(n_branches=1),
    'dyn_cpu dynamic (2 branches, linear)': dict(n_branches=2, norm='after', act='after', start='twin'),
}

def one(kw, max_s, seed):
    m = create_model('dyn_cpu', **kw).eval()
    m.meta = dict(arch='dyn_cpu', model_kw=kw, n_in=3, n_out=10, size=32, vocab=[], normalize=None)
    lat = latencies({'a': m, 'b': m}, max_s=max_s, seed=seed)
    out = {}
    for k, ca in lat['a']['calls'].items():
        cb = lat['b']['calls'][k]
        r, lo, hi = geo_interval(ca['blocks'], cb['blocks'])
        one_block = [x/y for x, y in zip(ca['blocks'], cb['blocks'])]
        out[k] = dict(ratio=round(r, 4), lo=round(lo, 4), hi=round(hi, 4), blocks=len(ca['blocks']), calls=ca['n'],
                      half_width=round(max(ca['hi']/lat['a'][k.split()[0]][k.split()[1]] - 1, 1 - ca['lo']/lat['a'][k.split()[0]][k.split()[1]]), 4),
                      one_block_min=round(min(one_block), 4), one_block_max=round(max(one_block), 4))
    return dict(cells=out, impl=lat['a']['impl'], capped=lat['a']['capped'])

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--repeats', type=int, default=2)
    ap.add_argument('--max-s', type=float, default=90.)
    ap.add_argument('--out', default='bench/results/latency-aa-cpu.json')
    args = ap.parse_args()
    t0, load0 = time.time(), os.getloadavg()
    runs = {name: [one(kw, args.max_s, seed) for seed in range(args.repeats)] for name, kw in NETS.items()}
    for name, rs in runs.items():
        for r in rs: print(name, {k: (v['ratio'], v['lo'], v['hi'], v['one_block_min'], v['one_block_max']) for k, v in r['cells'].items()}, flush=True)
    res = dict(what='latency A/A: two copies of one network timed side by side (`latencies`)', command='python ' + ' '.join(sys.argv),
               machine=machine(), load_before=load0, load_after=os.getloadavg(), seconds=round(time.time() - t0),
               max_s=args.max_s, runs=runs)
    Path(args.out).write_text(json.dumps(res, indent=1))
