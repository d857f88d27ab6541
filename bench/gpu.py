"""GPU benchmarks (parts 4 and 5 of the benchmarks issue): time to 94 % against airbench, and seed reproduction.

    python bench/gpu.py tta   --data /root/data --runs 5 [--compile]     # dyn_fast + recipe('fast94') vs airbench94
    python bench/gpu.py seeds --data /root/data [--recipes seed000 ...] [--epoch-frac 0.2]

`--data` is a folder holding `cifar-10-batches-py/`. airbench (PyPI `airbench==0.1.8`, installed from a wheel on the GPU
machine, never vendored) reads `train.pt`/`test.pt` from `./cifar10`; they are written from the same pickles first, so
both train on identical data and neither downloads. Test accuracy is reported on the 1,000 exact official test images
(`test_batch[:1000]`) and on all 10,000 (the rest of the shared copy is a JPEG re-encoding, biased down; see the data
README). Each result goes to `bench/results/` as JSON with the GPU, torch version and date.

On a machine without a GPU, `--device cpu --n-train 500 --n-test 1000 --runs 1 --epochs 1 --skip-airbench` runs the same code path
end to end in a minute (a smoke test, not a benchmark).
"""
from __future__ import annotations
import argparse, json, statistics, time
from pathlib import Path
import torch
from bench import machine, RESULTS


def _sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()


def _accuracies(learn, dls_full, tta):
    "accuracy on test[:1000] (exact) and on all 10,000, with flip TTA if asked"
    dl = dls_full.valid.new(shuffle=False, drop_last=False)
    with learn.no_bar(): preds, targs = learn.flip_tta(dl=dl) if tta else learn.get_preds(dl=dl)
    ok = (preds.argmax(1) == targs).float()
    return dict(acc_exact1000=float(ok[:1000].mean()), acc_all10000=float(ok.mean()))


def write_airbench_data(data:dict, dest:Path):
    "airbench's `train.pt` and `test.pt` from our arrays (uint8 NHWC images, int labels, class names)"
    dest.mkdir(parents=True, exist_ok=True)
    for split, fn in (('train', 'train.pt'), ('test', 'test.pt')):
        x, y = data[split]
        torch.save(dict(images=torch.from_numpy(x), labels=torch.from_numpy(y), classes=list(data['classes'])), dest/fn)


def run_airbench(data, runs):
    import airbench
    write_airbench_data(data, Path('cifar10'))
    test_loader = airbench.CifarLoader('cifar10', train=False, batch_size=1000)
    airbench.warmup94(verbose=False)
    res = []
    for r in range(runs):
        torch.cuda.synchronize(); t = time.perf_counter()
        model = airbench.train94(run=r, verbose=False)
        torch.cuda.synchronize(); wall = time.perf_counter() - t
        logits = airbench.infer(model, test_loader, tta_level=2)
        ok = (logits.argmax(1) == test_loader.labels).float()
        res.append(dict(run=r, wall_s=wall, acc_exact1000=float(ok[:1000].mean()), acc_all10000=float(ok.mean())))
        print(f"airbench94 run {r}: {wall:.2f} s, {res[-1]['acc_exact1000']*100:.2f} % (exact 1000), "
              f"{res[-1]['acc_all10000']*100:.2f} % (all)", flush=True)
    return res


def run_dynblocks(data, a, rname='fast94', epochs=None):
    from dynblocks.data import cifar10_dls
    from dynblocks.learner import dyn_learner
    from dynblocks.recipes import recipe
    dev = torch.device(a.device)
    r = recipe(rname)
    dls = cifar10_dls(data, bs=r.bs if dev.type == 'cuda' else 100, aug=r.aug, stats=r.stats, n_train=a.n_train,
                      n_valid=a.n_test, device=dev, seed=0)
    res = []
    for i in range(-1 if a.warmup else 0, a.runs):  # run -1 warms up cuDNN autotuning and compilation
        learn = dyn_learner(dls, recipe=r, seed=i if i >= 0 else 123)
        # channels-last: `dyn_learner` adds fastai's `ChannelsLast` callback
        if a.bf16 and dev.type == 'cuda': learn.to_bf16()
        if a.compile: learn.compile()
        _sync(dev); t = time.perf_counter()
        with learn.no_bar(), learn.no_logging(): learn.fit_recipe(epochs=1 if i < 0 else (epochs or a.epochs or r.epochs))
        _sync(dev); wall = time.perf_counter() - t
        if i < 0: continue
        acc = _accuracies(learn, dls, tta=r.tta == 'flip')
        res.append(dict(run=i, recipe=rname, wall_s=wall, epochs=epochs or a.epochs or r.epochs, **acc))
        print(f"dynblocks {r.arch}/{rname} run {i}: {wall:.2f} s, {acc['acc_exact1000']*100:.2f} % (exact 1000), "
              f"{acc['acc_all10000']*100:.2f} % (all)", flush=True)
    return res


def _summary(rows):
    w = [o['wall_s'] for o in rows]; a1 = [o['acc_exact1000'] for o in rows]; a2 = [o['acc_all10000'] for o in rows]
    sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.
    return dict(n_runs=len(rows), wall_mean=statistics.mean(w), wall_sd=sd(w), acc_exact1000_mean=statistics.mean(a1),
                acc_exact1000_sd=sd(a1), acc_all10000_mean=statistics.mean(a2), acc_all10000_sd=sd(a2))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('what', choices=['tta', 'seeds'])
    p.add_argument('--data', default=None)
    p.add_argument('--runs', type=int, default=5)
    p.add_argument('--epochs', type=int, default=None, help='override the recipe\'s epochs')
    p.add_argument('--epoch-frac', type=float, default=0.2, help='seeds: this fraction of each report\'s epochs')
    p.add_argument('--recipes', nargs='+', default=['seed000', 'seed001', 'seed002', 'seed003', 'seed004'])
    p.add_argument('--n-train', type=int, default=None)
    p.add_argument('--n-test', type=int, default=None, help='evaluate on the first N test images only (smoke tests)')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--compile', action='store_true'); p.add_argument('--bf16', action='store_true')
    p.add_argument('--no-warmup', dest='warmup', action='store_false')
    p.add_argument('--skip-airbench', action='store_true')
    p.add_argument('--out', default=None, help='JSON file (default: bench/results/<what>-<device>-<date>.json)')
    a = p.parse_args(argv)
    from dynblocks.cifar import load_cifar10
    data = load_cifar10(a.data, download=False)
    m = machine()
    print(f"dynblocks bench {a.what} on {m.get('gpu', m['cpu'])}, torch {m['torch']}, {m['date']}", flush=True)
    out = dict(machine=m, args=vars(a))
    if a.what == 'tta':
        ours = run_dynblocks(data, a)
        out['dynblocks'] = dict(runs=ours, **_summary(ours))
        if not a.skip_airbench:
            ab = run_airbench(data, a.runs)
            out['airbench94'] = dict(runs=ab, **_summary(ab))
            out['time_ratio'] = out['dynblocks']['wall_mean']/out['airbench94']['wall_mean']
            print(f"time ratio dynblocks/airbench94: {out['time_ratio']:.2f} (target <= 2.0); "
                  f"dynblocks mean accuracy {out['dynblocks']['acc_all10000_mean']*100:.2f} % (target 94.0)")
    else:
        from dynblocks.recipes import recipe
        out['seeds'] = {}
        for rn in a.recipes:
            r = recipe(rn)
            ep = a.epochs or max(1, round(r.epochs*a.epoch_frac))
            a.runs, a.warmup = 1, False
            rows = run_dynblocks(data, a, rn, ep)
            out['seeds'][rn] = dict(report_acc=r.report_acc, report_epochs=r.epochs, **rows[0])
    fn = Path(a.out) if a.out else RESULTS/f"{a.what}-{'gpu' if a.device.startswith('cuda') else 'cpu'}-{m['date']}.json"
    fn.parent.mkdir(parents=True, exist_ok=True); fn.write_text(json.dumps(out, indent=1))
    print(f'wrote {fn}')

if __name__ == '__main__': main()
