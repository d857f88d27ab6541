"""dynblocks benchmarks: honest timings that print tables and write JSON.

    python bench/bench.py block [--presets dyn_res4 dyn_pool4] [--bs 512] [--dtype bf16] [--channels-last]
    python bench/bench.py data  [--policy crop_flip] [--n 10000]
    python bench/bench.py train [--presets dyn_fast] [--bs 512]

Every figure is a median over `--repeats` timed runs after `--warmup` untimed ones, with the clock synchronised
with the device (CUDA events on a GPU), and is written with the machine, torch version and date to
`bench/results/<what>-<device>-<date>.json`.
"""
from __future__ import annotations
import argparse, datetime, json, platform, statistics, time
from pathlib import Path
import torch

RESULTS = Path(__file__).parent/'results'


def cpu_model() -> str:
    "The CPU's model name (/proc/cpuinfo), which changes between machines of the same kind: a time means something beside it"
    try: return next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except (OSError, StopIteration): return platform.processor() or platform.machine()


def machine() -> dict:
    d = dict(torch=torch.__version__, date=datetime.date.today().isoformat(), python=platform.python_version(),
             cpu=platform.processor() or platform.machine(), cpu_model=cpu_model(), cpu_threads=torch.get_num_threads())
    if torch.cuda.is_available(): d['gpu'] = torch.cuda.get_device_name()
    return d



# Honest timing on a shared machine: the library's helpers (dynblocks.measure), with a pause file shared by the bench scripts
PAUSE, LOCK = Path('/tmp/dynblocks-bench.pause'), Path('/tmp/dynblocks-bench.lock')


def wait_for_idle(max_other, quiet_s=10., say=print):
    "Wait while `PAUSE` exists, then until other processes have used under `max_other` cores for `quiet_s` seconds"
    from dynblocks.measure import wait_for_idle as wait
    wait(max_other, quiet_s, say, pause=PAUSE)

def start_training_bench(what:str, a, argv) -> tuple:
    "(CIFAR-10 arrays, JSON path, result dict) for a benchmark that trains: data as `dynblocks train` finds it, machine, command"
    import sys, fastai
    from dynblocks.train import resolve_data
    from dynblocks.cifar import load_cifar10
    path, desc = resolve_data(a.data)
    m = machine(); m['fastai'] = fastai.__version__
    out = Path(a.out or RESULTS/f"{what}-cpu-{m['date']}.json")
    res = dict(what=what, command=f'python bench/{what}.py ' + ' '.join(argv if argv is not None else sys.argv[1:]),
               machine=m, data=desc, args=vars(a), runs=[])
    return load_cifar10(path, download=False), out, res


def timeit(fn, device, warmup=2, repeats=5) -> dict:
    "Median and spread (min, max) of `fn()` in seconds, after `warmup` calls, clock synchronised with `device`"
    for _ in range(warmup): fn()
    ts = []
    for _ in range(repeats):
        if device.type == 'cuda':
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record(); fn(); e.record(); torch.cuda.synchronize(); ts.append(s.elapsed_time(e)/1000)
        else:
            t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return dict(median=statistics.median(ts), min=min(ts), max=max(ts), n=len(ts))


def _dtype(s): return {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}[s]


def bench_block(a):
    "Forward+backward and inference images/s of each preset under each `DynBlock` implementation"
    from dynblocks.models import create_model
    from dynblocks.block import set_impl, DynBlock
    dev = torch.device(a.device)
    rows = []
    for name in a.presets:
        m = create_model(name, width=a.width).to(dev)
        if a.channels_last: m = m.to(memory_format=torch.channels_last)
        x = torch.randn(a.bs, 3, 32, 32, device=dev)
        if a.channels_last: x = x.contiguous(memory_format=torch.channels_last)
        impls = ['reference', 'fused'] + (['aggregate'] if any(b.linear_branches for b in m.modules() if isinstance(b, DynBlock)) else [])
        for impl in impls:
            set_impl(m, impl)
            def train_step():
                with torch.autocast(dev.type, dtype=_dtype(a.dtype) or torch.float32, enabled=a.dtype != 'fp32'):
                    loss = m(x).float().logsumexp(1).mean()
                loss.backward()
            def infer():
                with torch.no_grad(), torch.autocast(dev.type, dtype=_dtype(a.dtype) or torch.float32, enabled=a.dtype != 'fp32'):
                    m(x)
            m.train(); tt = timeit(train_step, dev, a.warmup, a.repeats)
            m.eval(); ti = timeit(infer, dev, a.warmup, a.repeats)
            m.zero_grad(set_to_none=True)
            rows.append(dict(preset=name, impl=impl, train_img_s=a.bs/tt['median'], infer_img_s=a.bs/ti['median'],
                             train_s=tt, infer_s=ti))
    for r in rows:
        ref = next(o for o in rows if o['preset'] == r['preset'] and o['impl'] == 'reference')
        r['train_vs_reference'] = r['train_img_s']/ref['train_img_s']; r['infer_vs_reference'] = r['infer_img_s']/ref['infer_img_s']
    print(f"{'preset':<11}{'impl':<11}{'train img/s':>12}{'x ref':>7}{'infer img/s':>13}{'x ref':>7}")
    for r in rows:
        print(f"{r['preset']:<11}{r['impl']:<11}{r['train_img_s']:>12.1f}{r['train_vs_reference']:>7.2f}"
              f"{r['infer_img_s']:>13.1f}{r['infer_vs_reference']:>7.2f}")
    return rows


def bench_data(a):
    "Augmented images/s: the device-resident fast path against fastai's per-item pipeline, same policy"
    from dynblocks.data import cifar10_dls
    from dynblocks.cifar import load_cifar10
    data = load_cifar10(a.data, download=False)
    dev = torch.device(a.device)
    rows = []
    for fast in (True, False):
        dls = cifar10_dls(data, bs=a.bs, aug=a.policy, n_train=a.n, fast=fast, device=dev, seed=0)
        dl = dls.train
        def epoch():
            for xb, yb in dl: pass
            if dev.type == 'cuda': torch.cuda.synchronize()
        t = timeit(epoch, dev, 1, a.repeats)
        n = len(dl)*dl.bs
        rows.append(dict(path='fast (device-resident)' if fast else 'fastai per-item', policy=a.policy, images=n,
                         img_s=n/t['median'], epoch_s=t))
    rows[0]['speedup'] = rows[0]['img_s']/rows[1]['img_s']
    for r in rows: print(f"{r['path']:<24}{r['policy']:<10}{r['img_s']:>12.0f} img/s")
    print(f"fast path: {rows[0]['speedup']:.1f}x fastai's per-item pipeline")
    return rows


def bench_train(a):
    "Training throughput per preset: fp32 vs autocast, contiguous vs channels-last, eager vs compiled; MFU on a GPU"
    from dynblocks.models import create_model, count_flops
    dev = torch.device(a.device)
    peak = None
    if dev.type == 'cuda':
        n = 8192; A = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
        t = timeit(lambda: A @ A, dev, 3, 10); peak = 2*n**3/t['median']
    rows = []
    for name in a.presets:
        flops = count_flops(create_model(name, width=a.width))
        for dtype in a.dtypes:
            for cl in (False, True):
                for comp in ([False, True] if a.compile else [False]):
                    m = create_model(name, width=a.width).to(dev)
                    if cl: m = m.to(memory_format=torch.channels_last)
                    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
                    f = torch.compile(m) if comp else m
                    x = torch.randn(a.bs, 3, 32, 32, device=dev); y = torch.randint(0, 10, (a.bs,), device=dev)
                    if cl: x = x.contiguous(memory_format=torch.channels_last)
                    def step():
                        with torch.autocast(dev.type, dtype=_dtype(dtype) or torch.float32, enabled=dtype != 'fp32'):
                            loss = torch.nn.functional.cross_entropy(f(x), y)
                        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
                    t = timeit(step, dev, a.warmup + (3 if comp else 0), a.repeats)
                    img_s = a.bs/t['median']
                    r = dict(preset=name, dtype=dtype, channels_last=cl, compiled=comp, img_s=img_s, step_s=t,
                             model_flops=flops, train_tflops=3*flops*img_s/1e12)
                    if peak: r['mfu'] = 3*flops*img_s/peak; r['peak_bf16_tflops'] = peak/1e12
                    rows.append(r)
                    print(f"{name:<11}{dtype:<6}{'CL' if cl else '  '} {'compiled' if comp else 'eager   '}{img_s:>10.1f} img/s"
                          + (f"  MFU {r['mfu']*100:.1f} %" if peak else ''))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('what', choices=['block', 'data', 'train'])
    p.add_argument('--presets', nargs='+', default=['dyn_tiny', 'dyn_res4', 'dyn_pool4'])
    p.add_argument('--bs', type=int, default=None)
    p.add_argument('--width', type=float, default=1.)
    p.add_argument('--dtype', default='fp32', choices=['fp32', 'bf16', 'fp16'])
    p.add_argument('--dtypes', nargs='+', default=None)
    p.add_argument('--channels-last', action='store_true')
    p.add_argument('--compile', action='store_true')
    p.add_argument('--policy', default='crop_flip')
    p.add_argument('--n', type=int, default=5000, help='training images for the data benchmark')
    p.add_argument('--data', default=None, help='CIFAR-10 folder (default: as cifar10_dls finds it)')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--out', default=None, help='JSON file (default: bench/results/<what>-<device>-<date>.json)')
    a = p.parse_args(argv)
    gpu = a.device.startswith('cuda')
    if a.bs is None: a.bs = 512 if gpu else (64 if a.what != 'data' else 256)
    if a.dtypes is None: a.dtypes = ['fp32', 'bf16'] if gpu else ['fp32']
    m = machine()
    print(f"dynblocks bench {a.what} on {m.get('gpu', m['cpu'])}, torch {m['torch']}, {m['date']}")
    rows = dict(block=bench_block, data=bench_data, train=bench_train)[a.what](a)
    out = Path(a.out) if a.out else RESULTS/f"{a.what}-{'gpu' if gpu else 'cpu'}-{m['date']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(machine=m, args=vars(a), results=rows), indent=1))
    print(f'wrote {out}')

if __name__ == '__main__': main()
