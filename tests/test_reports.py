"""Each preset and recipe as its report states it.

- every statement row of the Reports page holds (`report_facts`);
- each preset's parameters and forward FLOPs equal a hand count written out below, layer by layer, from the report;
- each report recipe's optimiser is PyTorch's with the report's hyper-parameters, and its learning rate (and momentum)
  at every batch equals PyTorch's scheduler stepped side by side on a dummy optimiser, built here from the report.
"""
import math
import pytest, torch
from torch import nn
from dynblocks.cifar import sample_path
from dynblocks.data import cifar10_dls
from dynblocks.learner import dyn_learner
from dynblocks.models import create_model, count_flops
from dynblocks.recipes import recipe
from dynblocks.reports import REPORTS, report_facts

REPORT_RECIPES = ['seed000', 'seed001', 'seed002', 'seed003', 'seed004']


@pytest.mark.parametrize('name', REPORT_RECIPES)
def test_report_statements(name):
    bad = [(f['statement'], f['dynblocks'], f['report']) for f in report_facts(name) if not f['holds']]
    assert not bad, bad


# ---------------------------------------------------------------- hand counts (32×32 input; a multiply-add is 2 FLOPs;
# torch's counter counts convolutions and matrix products, not BatchNorm, activations, pooling or the weighted sum)
class Count:
    def __init__(self): self.params, self.flops = 0, 0

    def dyn(self, ni, nf, L, H, k=3, stride=1, pad=None, norm='branch', residual=False, pool=False):
        "A DynBlock: all branches' kernels, conv bias unless BN is per branch, the BNs, the attention Linear, the projection"
        pad = k//2 if pad is None else pad
        Ho = (H + 2*pad - k)//stride + 1
        self.params += L*nf*ni*k*k + (2*L*nf if norm == 'branch' else L*nf + 2*nf) + ni*L + L
        self.flops += 2*L*nf*ni*k*k*Ho*Ho + 2*ni*L
        Hout = Ho//2 if pool else Ho
        if residual and (ni != nf or stride != 1 or pool):
            self.params += ni*nf + 2*nf
            self.flops += 2*ni*nf*Hout*Hout
        return Hout

    def conv(self, ni, nf, H, k=3, stride=1, pad=None, bn=True, bias=False):
        pad = k//2 if pad is None else pad
        Ho = (H + 2*pad - k)//stride + 1
        self.params += ni*nf*k*k + (nf if bias else 0) + (2*nf if bn else 0)
        self.flops += 2*ni*nf*k*k*Ho*Ho
        return Ho

    def linear(self, ni, no, bias=True, bn=False):
        self.params += ni*no + (no if bias else 0) + (2*no if bn else 0)
        self.flops += 2*ni*no

    def se_basic(self, ni, nf, H, stride=1):
        Ho = self.conv(ni, nf, H, stride=stride)
        self.conv(nf, nf, Ho)
        nh = max(4, nf//16)
        self.linear(nf, nh); self.linear(nh, nf)
        if ni != nf or stride != 1: self.conv(ni, nf, H, k=1, stride=stride, pad=0)
        return Ho


def hand_dyn_res4():  # 000: 4 blocks 64-128-256-512, 4 branches conv-BN-ReLU, residual, MaxPool after block 2; head 256, 128
    c = Count()
    H = c.dyn(3, 64, 4, 32, residual=True); H = c.dyn(64, 128, 4, H, residual=True); H //= 2
    H = c.dyn(128, 256, 4, H, residual=True); c.dyn(256, 512, 4, H, residual=True)
    c.linear(512, 256, bias=False, bn=True); c.linear(256, 128, bias=False, bn=True); c.linear(128, 10)
    return c

def hand_dyn_macro7():  # 001
    c = Count()
    H = c.dyn(3, 64, 2, 32)  # block 1: k3, padding/stride 1
    H = c.dyn(64, 128, 2, H, k=5, stride=2, pad=2)  # block 2: k5, padding 2, stride 2 -> 16×16
    assert H == 16
    c.dyn(128, 256, 2, H); c.dyn(256, 256, 2, H); c.conv(128, 256, H, k=1, pad=0, bn=False)  # macro 1 with its 1×1 conv
    H //= 2
    c.dyn(256, 384, 2, H); c.dyn(384, 384, 2, H); c.dyn(384, 384, 2, H)  # block 5, macro 2 (identity skip)
    H //= 2
    c.conv(384, 256, H, pad=0)  # valid 3×3 conv, BN, ReLU
    c.linear(256, 128); c.linear(128, 10)
    return c

def hand_se_resnet():  # 002: stem, four stages of two SE BasicBlocks 16-32-128-256, head 128
    c = Count()
    H = c.conv(3, 16, 32)
    ni = 16
    for i, nf in enumerate([16, 32, 128, 256]):
        H = c.se_basic(ni, nf, H, stride=1 if i == 0 else 2); H = c.se_basic(nf, nf, H); ni = nf
    c.linear(256, 128); c.linear(128, 10)
    return c

def hand_dyn_deep11():  # 003: 11 residual blocks of 3 linear convs, BN + LeakyReLU after the add, MaxPool between stages
    c = Count()
    H, ni = 32, 3
    for s, stage in enumerate([[64]*2, [128]*3, [256]*3, [256]*3]):
        if s: H //= 2
        for nf in stage: c.dyn(ni, nf, 3, H, norm='after_add', residual=True); ni = nf
    c.linear(256, 10)
    return c

def hand_dyn_pool4():  # 004: 4 blocks 64..512, 6 branches conv-ReLU-Dropout-MaxPool, BN after the sum; MLP 256-128-64
    c = Count()
    H, ni = 32, 3
    for nf in (64, 128, 256, 512): H = c.dyn(ni, nf, 6, H, norm='after', pool=True); ni = nf
    for a, b in [(512, 256), (256, 128), (128, 64), (64, 10)]: c.linear(a, b)
    return c

HAND = {'dyn_res4': hand_dyn_res4, 'dyn_macro7': hand_dyn_macro7, 'se_resnet': hand_se_resnet,
        'dyn_deep11': hand_dyn_deep11, 'dyn_pool4': hand_dyn_pool4}


@pytest.mark.parametrize('arch', list(HAND))
def test_params_and_flops_hand_count(arch):
    assert arch in [i['arch'] for i in REPORTS.values()]
    m, c = create_model(arch), HAND[arch]()
    assert sum(p.numel() for p in m.parameters()) == c.params
    assert count_flops(m) == c.flops


def test_macro7_runs_at_16_from_block_2():
    assert 1.9e9 < count_flops(create_model('dyn_macro7')) < 2.2e9  # about 2 GFLOPs (8.2 with block 2 at stride 1)


# ---------------------------------------------------------------- optimiser and schedule, side by side with PyTorch
def _learn(name, **kw):
    "The recipe's learner on 32 sample images (4 batches of 8) with a tiny model: the optimiser and schedule are the recipe's"
    dls = cifar10_dls(sample_path(), n_train=32, n_valid=16, bs=8, seed=0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    return dyn_learner(dls, model, recipe=recipe(name, **kw), channels_last=False)

OPTS = {  # what each report states, PyTorch's defaults for the rest
    'seed000': (torch.optim.SGD, dict(lr=None, momentum=None, nesterov=True, weight_decay=1e-3, dampening=0)),
    'seed001': (torch.optim.AdamW, dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.02, amsgrad=False)),
    'seed002': (torch.optim.Adam, dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=5e-4, amsgrad=False)),
    'seed003': (torch.optim.Adam, dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-5, amsgrad=False)),
    'seed004': (torch.optim.Adam, dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4, amsgrad=False)),
}


@pytest.mark.parametrize('name', REPORT_RECIPES)
def test_optimiser_matches_pytorch(name):
    learn = _learn(name, epochs=1)
    with learn.no_bar(), learn.no_logging(): learn.fit_recipe(1)
    cls, want = OPTS[name]
    opt = learn.opt.opt
    assert type(opt) is cls, type(opt)
    for g in opt.param_groups:
        for k, v in want.items():
            if v is not None: assert g[k] == v, (k, g[k], v)
    on = {id(p) for g in opt.param_groups if g['weight_decay'] > 0 for p in g['params']}
    assert on == {id(p) for p in learn.model.parameters()}  # weight decay on every parameter, BatchNorm and biases too


def _want_schedule(name, n):
    "lr (and momentum) per training batch, from PyTorch's scheduler stepped beside a dummy optimiser, as the report states it"
    p = torch.zeros(1, requires_grad=True)
    if name == 'seed000':  # OneCycleLR(max_lr=0.15) on SGD with Nesterov momentum 0.95, 100 epochs, per batch
        o = torch.optim.SGD([p], lr=0.15, momentum=0.95, nesterov=True)
        s, epochs, per = torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.15, total_steps=100*n), 100, 'batch'
    elif name == 'seed001':  # no scheduler: AdamW at 1e-3
        o = torch.optim.AdamW([p], lr=1e-3); s, epochs, per = None, 62, 'batch'
    elif name == 'seed002':  # CosineAnnealingLR(T_max=200) per epoch, 20 epochs
        o = torch.optim.Adam([p], lr=3.7168e-4)
        s, epochs, per = torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=200), 20, 'epoch'
    elif name == 'seed003':  # CosineAnnealingLR(T_max=100, eta_min=1e-6) per epoch, 40 epochs
        o = torch.optim.Adam([p], lr=1e-3)
        s, epochs, per = torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=100, eta_min=1e-6), 40, 'epoch'
    else:  # get_cosine_schedule_with_warmup(5 epochs of warm-up, 50 epochs), per batch
        o = torch.optim.Adam([p], lr=1e-3)
        w, t = 5*n, 50*n
        f = lambda i: i/w if i < w else max(0., 0.5*(1 + math.cos(math.pi*(i - w)/(t - w))))
        s, epochs, per = torch.optim.lr_scheduler.LambdaLR(o, f), 50, 'batch'
    lrs, moms = [], []
    for e in range(epochs):
        for b in range(n):
            lrs.append(o.param_groups[0]['lr']); moms.append(o.param_groups[0].get('momentum'))
            o.step()
            if s is not None and per == 'batch': s.step()
        if s is not None and per == 'epoch': s.step()
    return epochs, lrs, moms


@pytest.mark.parametrize('name', REPORT_RECIPES)
def test_schedule_matches_pytorch(name):
    learn = _learn(name)
    n = len(learn.dls.train)
    epochs, want, moms = _want_schedule(name, n)
    assert recipe(name).epochs == epochs
    with learn.no_bar(), learn.no_logging(): learn.fit_recipe()
    got = learn.recorder.hps['lr'] if hasattr(learn.recorder, 'hps') else [learn.opt.hypers[0]['lr']]*len(want)
    assert len(got) == len(want) == epochs*n
    for i in sorted({0, 1, n, len(want)//3, len(want)//2, len(want) - 1} | set(range(0, len(want), 7))):
        assert math.isclose(got[i], want[i], rel_tol=1e-9, abs_tol=1e-15), (i, got[i], want[i])
    if name == 'seed000':  # PyTorch's OneCycleLR cycles SGD's momentum between 0.85 and 0.95
        assert max(abs(a - b) for a, b in zip(learn.recorder.hps['mom'], moms)) < 1e-12


@pytest.mark.parametrize('name', REPORT_RECIPES)
def test_fastai_variant_uses_fastai_defaults(name):
    learn = _learn(f'{name}_fastai', epochs=1)
    with learn.no_bar(), learn.no_logging(): learn.fit_recipe(1)
    from fastai.optimizer import Optimizer
    if recipe(name).opt == 'nesterov': assert type(learn.opt.opt) is torch.optim.SGD  # fastai has no Nesterov SGD
    else:
        assert isinstance(learn.opt, Optimizer)
        h = learn.opt.hypers[0]
        assert (h['sqr_mom'], h['eps']) == (0.99, 1e-5)
