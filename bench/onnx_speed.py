"""Inference on the CPU: PyTorch eager against onnxruntime on the file `export_onnx` writes, per preset.

    python bench/onnx_speed.py [--presets dyn_tiny dyn_fast ...] [--bs 1 64] [--threads N] [--warmup 3] [--repeats 10]
    python bench/onnx_speed.py --smoke [--out FILE]      # one tiny preset, one repeat: checks that the script works

Each preset gets random weights and BatchNorm statistics from a few training-mode passes over random data (so the
folded BatchNorms are not the identity), is exported with `export_onnx` (any batch size, 'fused' blocks) and checked
(largest absolute difference of the logits on random inputs). Then, at each batch size: PyTorch eager in
`torch.inference_mode`, contiguous and channels-last (both recorded; the faster one is compared), against onnxruntime
with as many threads as torch uses. Where a preset has blocks with linear branches, the fixed-batch file (`batch=1`,
'aggregate' blocks: per-sample kernels) is timed at batch 1 too, against eager 'aggregate'. A timed sample is
`--images` images (batch 1: that many calls); figures are the median and (min, max) over `--repeats` samples after
`--warmup`, written with the machine and versions to `bench/results/onnx-cpu-<date>.json` after every preset.
Run it on an otherwise idle machine: torch's OpenMP threads slow down by orders of magnitude when other processes
compete for the cores, onnxruntime's far less, which would make the comparison meaningless.
"""
from __future__ import annotations
import argparse, copy, json, sys, tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# not named onnx.py: with bench/ on the path (the benchmark tests put it there) it would hide the `onnx` package
sys.path.insert(0, str(HERE))
import bench  # noqa: E402
import torch  # noqa: E402

SEED_PRESETS = ['dyn_res4', 'dyn_pool4', 'dyn_deep11', 'dyn_macro7', 'se_resnet']  # the reports' networks


def with_stats(name:str, width:float) -> torch.nn.Module:
    "The preset with random weights and trained-like BatchNorm statistics, in eval mode, with the `meta` of `load_model`"
    from dynblocks.models import create_model
    from dynblocks.export import FORMAT
    torch.manual_seed(0)
    m = create_model(name, width=width).train()
    with torch.no_grad():
        for _ in range(3): m(torch.randn(32, 3, 32, 32)*1.5 + 0.2)
    m.eval().meta = dict(format=FORMAT, arch=name, model_kw=dict(width=width), n_in=3, n_out=10, size=32, vocab=[], normalize=None)
    return m


def time_eager(m, x, calls, a) -> dict:
    "Timings of `calls` forward passes of `m` on `x`, contiguous and channels-last"
    res = {}
    for cl in (False, True):
        mm = copy.deepcopy(m).to(memory_format=torch.channels_last) if cl else m
        xx = x.contiguous(memory_format=torch.channels_last) if cl else x
        def f():
            with torch.inference_mode():
                for _ in range(calls): mm(xx)
        res['channels_last' if cl else 'contiguous'] = bench.timeit(f, torch.device('cpu'), a.warmup, a.repeats)
    return res


def time_ort(o, x, calls, a) -> dict:
    "Timings of `calls` runs of the `OnnxModel` `o` on `x`"
    def f():
        for _ in range(calls): o(x)
    return bench.timeit(f, torch.device('cpu'), a.warmup, a.repeats)


def row(preset, variant, bs, calls, eager, ort, diff) -> dict:
    best = min(eager, key=lambda k: eager[k]['median'])
    n = bs*calls
    r = dict(preset=preset, variant=variant, bs=bs, calls_per_sample=calls, max_abs_diff=diff, eager=eager, eager_best=best,
             ort=ort, eager_img_s=n/eager[best]['median'], ort_img_s=n/ort['median'])
    r['ort_vs_eager'] = r['ort_img_s']/r['eager_img_s']
    print(f"{preset:<11}{variant:<22}{bs:>4}{n/eager['contiguous']['median']:>12.1f}{n/eager['channels_last']['median']:>10.1f}"
          f"{r['ort_img_s']:>11.1f}{r['ort_vs_eager']:>8.2f}{diff:>10.1e}", flush=True)
    return r


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--presets', nargs='+', default=['dyn_tiny', 'dyn_cpu', 'dyn_fast', *SEED_PRESETS])
    p.add_argument('--width', type=float, default=1.)
    p.add_argument('--bs', type=int, nargs='+', default=[1, 64])
    p.add_argument('--images', type=int, default=64, help='images per timed sample (batch 1: that many calls)')
    p.add_argument('--threads', type=int, default=None, help='threads of torch and onnxruntime (default: torch.get_num_threads())')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--repeats', type=int, default=10)
    p.add_argument('--smoke', action='store_true', help='dyn_deep11 at width 1/8 (tiny, with the fixed-batch variant), '
                   'batches 1 and 4, one repeat, one thread (unless --threads), JSON to a temporary file unless --out')
    p.add_argument('--out', default=None, help='JSON file (default: bench/results/onnx-cpu-<date>.json)')
    a = p.parse_args(argv)
    if a.smoke: a.presets, a.width, a.bs, a.images, a.warmup, a.repeats, a.threads = ['dyn_deep11'], 0.125, [1, 4], 4, 0, 1, a.threads or 1
    if a.threads: torch.set_num_threads(a.threads)
    a.threads = torch.get_num_threads()
    import onnx, onnxruntime, onnxscript
    from dynblocks.export import export_onnx, check_onnx, load_onnx
    from dynblocks.block import DynBlock, set_impl
    m = bench.machine()
    m.update(onnxruntime=onnxruntime.__version__, onnx=onnx.__version__, onnxscript=onnxscript.__version__,
             ort_threads=a.threads)
    out = Path(a.out) if a.out else (Path(tempfile.mkdtemp())/'onnx-smoke.json' if a.smoke else bench.RESULTS/f"onnx-cpu-{m['date']}.json")
    res = dict(what='onnx', command='python bench/onnx_speed.py ' + ' '.join(argv if argv is not None else sys.argv[1:]),
               machine=m, args=vars(a), results=[])
    print(f"dynblocks bench onnx on {m['cpu']}, {a.threads} threads, torch {m['torch']}, onnxruntime {m['onnxruntime']}, {m['date']}")
    print(f"{'preset':<11}{'variant':<22}{'bs':>4}{'eager img/s':>12}{'eager CL':>10}{'ort img/s':>11}{'ort/eag':>8}{'max diff':>10}")
    tmp = Path(tempfile.mkdtemp())
    for name in a.presets:
        model = with_stats(name, a.width)
        fn = export_onnx(model, tmp/f'{name}.onnx', check=False)
        diff = check_onnx(model, fn, tol=float('inf'))  # recorded, never fatal here
        o = load_onnx(fn, threads=a.threads)
        for bs in a.bs:
            x, calls = torch.randn(bs, 3, 32, 32), max(1, a.images//bs)
            res['results'].append(row(name, 'any batch (fused)', bs, calls, time_eager(model, x, calls, a), time_ort(o, x, calls, a), diff))
        if any(b.linear_branches for b in model.modules() if isinstance(b, DynBlock)):
            fn1 = export_onnx(model, tmp/f'{name}-b1.onnx', batch=1, check=False)
            d1 = check_onnx(model, fn1, tol=float('inf'))
            agg = set_impl(copy.deepcopy(model), 'aggregate')
            x, calls = torch.randn(1, 3, 32, 32), a.images
            res['results'].append(row(name, 'batch 1 (aggregate)', 1, calls, time_eager(agg, x, calls, a),
                                      time_ort(load_onnx(fn1, threads=a.threads), x, calls, a), d1))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1))
    print(f'wrote {out}')


if __name__ == '__main__': main()
