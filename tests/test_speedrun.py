"The speedrun's pieces (issue 25): the time budget, and airbench's ideas as recipe and model options, each able to fail."
import json, math, re, subprocess, sys, time
from pathlib import Path
import pytest
import torch
from torch import nn
from fastai.callback.core import Callback
from dynblocks.callbacks import FreezeWhitenBias
from dynblocks.budget import TimeBudget
from dynblocks.averaging import EMALookahead
from dynblocks.data import cifar10_dls, DeviceDL
from dynblocks.learner import dyn_learner
from dynblocks.models import create_model, PatchWhiten
from dynblocks.recipes import recipe
from dynblocks.train import RunConfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope='module')
def dls(cifar_root): return cifar10_dls(cifar_root, n_train=1000, n_valid=200, bs=100, seed=0)


class _Ticks(Callback):
    "A fake clock: a training batch takes `dt(self)` seconds, a validation batch a third of it"
    order = 1
    def __init__(self, dt): self.t, self.dt = 0., dt
    def clock(self): return self.t
    def after_batch(self): self.t += self.dt(self) if self.training else self.dt(self)/3


def _budget_fit(dls, seconds, dt):
    ticks = _Ticks(dt)
    tb = TimeBudget(seconds, clock=ticks.clock)
    learn = dyn_learner(dls, 'dyn_tiny', model_kw=dict(width=0.25), seed=0, cbs=[ticks, tb], cpu_note=False)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-3)
    return learn, tb, ticks


def test_time_budget_ends_on_time_and_adapts(dls):
    learn, tb, ticks = _budget_fit(dls, 10., lambda cb: 0.1)
    assert abs(ticks.t - 10) < 0.35 and tb.done == tb.planned and tb.finished
    assert len(learn.recorder.values) == math.ceil(tb.done/len(dls.train)) and {len(v) for v in learn.recorder.values} == {4}
    learn, tb, ticks = _budget_fit(dls, 10., lambda cb: 0.1 if cb.t < 5 else 0.2)  # slows down halfway
    assert abs(ticks.t - 10) < 0.45 and tb.replans[-1]['why'] == 'slower' and tb.p == 1


@pytest.mark.serial  # a wall-clock budget: timed alone
def test_budget_run_from_the_command_line(tmp_path, cifar_root):
    "`dynblocks train --budget` ends inside its budget from launch, and says what it did"
    t = time.time()
    r = subprocess.run([sys.executable, '-m', 'dynblocks', 'train', '--data', str(cifar_root), '--n-train', '1000', '--n-valid', '200',
                        '--width', '0.25', '--budget', '30', '--recipe-kw', '{"tta": "flip"}', '--out', str(tmp_path/'run'), '--quiet'],
                       capture_output=True, text=True, cwd=ROOT)
    wall = time.time() - t
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path/'run'/'summary.json').read_text())
    assert wall < 30 and s['budget']['batches'] == s['budget']['planned'] and s['epochs'] > 1, (wall, s['budget'])
    assert 'time budget: 30 s' in r.stdout
    assert s['tta_accuracy'] is not None, s.get('tta')  # on an idle machine the plan leaves room for the TTA (PLAN_MARGIN)


def test_budget_counts_from_dynblocks_start(tmp_path, cli, monkeypatch):
    "The budget counts from dynblocks' first import, not from the process's start (a shell that `exec`s it, as `bash dev.sh train` "
    "does after installing); the default recipe's budget spent before training trains one pass and says so; an explicit one is an error"
    code = 'from dynblocks.core import launched; import dynblocks.cli; print(launched())'  # the clock `dynblocks train` passes as t0
    r = subprocess.run(['bash', '-c', f'date +%s.%N; sleep 3; exec {sys.executable} -c "{code}"'], capture_output=True, text=True, check=True)
    shell, clock = map(float, r.stdout.split())
    assert clock > shell + 2.9, (shell, clock)  # the shell's 3 s are not the run's
    import dynblocks.core
    monkeypatch.setattr(dynblocks.core, '_STARTED', time.time() - 100)  # 100 s went by before training could start
    r = cli('train', '--data', 'sample', '--n-train', '200', '--n-valid', '100', '--width', '0.25', '--quiet', '--out', tmp_path/'late')
    assert r.returncode == 0, r.stderr[-2000:]
    assert re.search(r"^the default recipe's 60 s budget was used up before training started \(10\d s since dynblocks started\): "
                     r"training one pass instead \(--budget or --epochs chooses\)$", r.stdout, re.M), r.stdout
    assert json.loads((tmp_path/'late'/'summary.json').read_text())['epochs'] == 1
    r = cli('train', '--data', 'sample', '--budget', '60', '--width', '0.25', '--out', tmp_path/'late2')
    assert r.returncode == 2 and 'The time budget of 60 s is used up before training starts' in r.stderr, r.stderr


def test_alternating_flip(cifar_root):
    xs, ys = torch.randint(0, 256, (12, 3, 8, 8), dtype=torch.uint8), torch.arange(12)
    dl = DeviceDL(xs=xs, ys=ys, bs=12, seed=0, alt_flip=True)
    a, b = [x for x, _ in dl][0], [x for x, _ in dl][0]
    fa, fb = (a != xs).flatten(1).any(1), (b != xs).flatten(1).any(1)
    assert (fa ^ fb).all() and 0 < fa.sum() < 12  # a random half flipped, then the other half
    d = cifar10_dls(cifar_root, n_train=200, n_valid=100, bs=100, seed=0, aug='alt_flip_shift')
    assert d.train.alt_flip and not d.valid.alt_flip


def test_bn_bias_lr_and_momentum(dls):
    learn = dyn_learner(dls, recipe=recipe('cpu10', bn_bias_lr=64., bn_momentum=0.4), model_kw=dict(width=0.25), cpu_note=False)
    bns = [m for m in learn.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert all(not m.weight.requires_grad and m.momentum == 0.4 for m in bns)
    with learn.no_bar(), learn.no_logging(): learn.fit_recipe(epochs=1)
    groups = learn.opt.param_groups
    assert {id(p) for p in groups[-1]['params']} == {id(m.bias) for m in bns}
    lrs = [h['lr'] for h in learn.opt.hypers]
    assert lrs[-1] == pytest.approx(64*lrs[0]) and all(m.weight.eq(1).all() for m in bns)


def test_dirac_init():
    m = create_model('dyn_cpu', init='dirac', width=0.25)
    conv = [c for c in m.modules() if isinstance(c, nn.Conv2d) and c.kernel_size == (3, 3) and c.out_channels >= c.in_channels][0]
    x = torch.randn(1, conv.in_channels, 5, 5)
    assert torch.allclose(nn.functional.conv2d(x, conv.weight[:conv.in_channels].detach(), padding=1), x)


def test_lookahead_pulls_to_the_average(dls):
    nb = len(dls.train)
    assert nb >= 5
    # one update inside the epoch (the average starts at step nb-1), so only the epoch's end can put the network on it
    learn = dyn_learner(dls, 'dyn_tiny', model_kw=dict(width=0.25), seed=0, cpu_note=False, cbs=[EMALookahead(0.9, every=nb - 1, start=0.)])
    w0 = [p.detach().clone() for p in learn.model.parameters()]
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    la = learn.ema_lookahead
    assert la.avg is not None and la.n == nb
    for a, t in zip(la.avg, la._tensors()): assert torch.equal(a, t)  # the epoch ends on the average
    assert any(not torch.equal(a, b) for a, b in zip(w0, learn.model.parameters()))


def test_whiten_bias_frozen_after_pct(dls):
    learn = dyn_learner(dls, 'dyn_cpu', model_kw=dict(width=0.25), seed=0, cpu_note=False, cbs=[FreezeWhitenBias(0.5)])
    w = next(m for m in learn.model.modules() if isinstance(m, PatchWhiten))
    seen = []
    class Bias(Callback):
        order = 70
        def after_step(self): seen.append(w.conv.bias.detach().clone())
    with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-2, cbs=[Bias()])
    n = len(seen)
    assert not torch.equal(seen[0], seen[n//2 - 2]) and all(torch.equal(seen[n//2 + 1], b) for b in seen[n//2 + 1:])


def test_flip_shift_tta(dls):
    learn = dyn_learner(dls, 'dyn_tiny', model_kw=dict(width=0.25), seed=0, cpu_note=False)
    p2, y = learn.flip_tta(); p6, y6 = learn.flip_shift_tta()
    assert torch.equal(y, y6) and torch.allclose(p6.sum(1), torch.ones(len(y)), atol=1e-4) and not torch.allclose(p2, p6)


def test_recipe_kw():
    r = RunConfig(recipe='cpu10', recipe_kw={'tta': 'flip', 'whiten_bias': 0.3}).resolved()  # cpu10's own TTA is 'flip_shift'
    assert (r.tta, r.whiten_bias) == ('flip', 0.3)
    with pytest.raises(Exception, match="no field 'tta_level'"): RunConfig(recipe_kw={'tta_level': 2})
    with pytest.raises(Exception, match="`recipe_kw` has no field 'notes'"): RunConfig(recipe_kw={'notes': 'mine'})  # a field, not an option
