"""A network against its dynamized self, at equal epochs on a CIFAR-10 subset, on this machine.

    python bench/dynamize.py [--data ../shared/data] [--arch resnet18] [--n-train 5000] [--epochs 5] [--seeds 0 1 2]

fastai's `vision_learner(dls, arch, pretrained=False)` against `dyn_vision_learner(dls, arch, pretrained=False)`
(every 3×3 conv of the body dynamized, `--n-branches` kernels): the same data, seed, one-cycle schedule and epochs.
Accuracy on the exact test images 0-999; parameters, forward FLOPs at 32×32 and training time per run. Results go to
`bench/results/dynamize-cpu-<date>.json`, rewritten after every run.
"""
from __future__ import annotations
import argparse, json, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from bench import start_training_bench  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data', default=None, help='CIFAR-10 folder (default: as `dynblocks train` finds it)')
    p.add_argument('--arch', default='resnet18', choices=['resnet18', 'xresnet18', 'mobilenet_v2'])
    p.add_argument('--n-branches', type=int, default=4)
    p.add_argument('--n-train', type=int, default=5000)
    p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--bs', type=int, default=128)
    p.add_argument('--lr', type=float, default=2e-3)
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--out', default=None)
    a = p.parse_args(argv)
    from fastai.vision.learner import vision_learner
    from fastai.metrics import accuracy
    from fastai.torch_core import set_seed
    from dynblocks.data import cifar10_dls
    from dynblocks.learner import dyn_vision_learner
    from dynblocks.models import count_flops
    arch = {'resnet18': lambda: __import__('torchvision.models', fromlist=['resnet18']).resnet18,
            'mobilenet_v2': lambda: __import__('torchvision.models', fromlist=['mobilenet_v2']).mobilenet_v2,
            'xresnet18': lambda: __import__('fastai.vision.models.xresnet', fromlist=['xresnet18']).xresnet18}[a.arch]()
    data, out, res = start_training_bench('dynamize', a, argv)
    for seed in a.seeds:
        for dyn in (False, True):
            dls = cifar10_dls(data, n_train=a.n_train, n_valid=1000, bs=a.bs, seed=seed)
            set_seed(seed, reproducible=True)
            make = dyn_vision_learner if dyn else vision_learner
            kw = dict(n_branches=a.n_branches) if dyn else {}
            learn = make(dls, arch, pretrained=False, metrics=accuracy, **kw)
            t = time.perf_counter()
            with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(a.epochs, a.lr)
            secs = time.perf_counter() - t
            row = dict(model=f"{a.arch}{' dynamized' if dyn else ''}", dynamized=dyn, seed=seed, secs=secs,
                       valid_accuracy=float(learn.recorder.values[-1][2]), valid_loss=float(learn.recorder.values[-1][1]),
                       params=sum(q.numel() for q in learn.model.parameters()), flops=count_flops(learn.model.eval(), 32, 3))
            res['runs'].append(row)
            print(json.dumps(row), flush=True)
            out.write_text(json.dumps(res, indent=1))


if __name__ == '__main__': main()
