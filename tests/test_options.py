"The dynamic-block options of issue 24, each tested so that breaking it fails a test (tools/break_tests.py holds the breaks)."
import math
import pytest
import torch
from torch import nn
from dynblocks.block import DynBlock, Gate, make_router, set_impl
from dynblocks.dynamize import DynConv2d
from dynblocks.models import create_model, count_flops
from dynblocks.callbacks import AnnealTemperature
from dynblocks.attention import attention_stats, attention_state


LIN = dict(norm='after', act='after', act_cls=nn.GELU)


def test_twin_start_computes_the_twin():
    torch.manual_seed(0)
    dyn = DynBlock(8, 16, n_branches=4, start='twin', **LIN).double()
    one = DynBlock(8, 16, n_branches=1, **LIN).double()
    with torch.no_grad(): one.weight.copy_(dyn.weight)
    x = torch.randn(6, 8, 10, 10, dtype=torch.float64)
    assert (dyn(x) - one(x)).abs().max() < 1e-6
    assert dyn.delta.abs().max() > 1e-4  # the branches differ, so the router gets a gradient


def _mixed_step(block, x, lr=0.1):
    "How far one SGD step moves the kernel the block applies to a uniformly weighted sample (its mean branch kernel)"
    def mixed(): return block._kernel().detach().reshape(block.n_branches, -1).mean(0).clone()
    before = mixed()
    opt = torch.optim.SGD(block.parameters(), lr=lr)
    block(x).pow(2).mean().backward(); opt.step()
    return (mixed() - before).norm().item()


def test_twin_start_steps_at_the_twins_size():
    "The shared kernel gets the twin's whole gradient: the mixed kernel moves at least as far as the twin's (L kernels alone move 1/L as far)"
    torch.manual_seed(0)
    x = torch.randn(8, 4, 6, 6)
    kw = dict(norm='none', act='none')
    twin = DynBlock(4, 4, n_branches=1, **kw)
    dyn = DynBlock(4, 4, n_branches=4, start='twin', **kw)
    with torch.no_grad(): twin.weight.copy_(dyn.weight)
    separate = DynBlock(4, 4, n_branches=4, **kw)  # independent kernels, each the twin's
    with torch.no_grad():
        separate.weight.copy_(dyn._kernel()); separate.attn.weight.zero_(); separate.attn.bias.zero_()
    t, d, s = _mixed_step(twin, x), _mixed_step(dyn, x), _mixed_step(separate, x)
    assert d >= 0.99*t and s < 0.3*t, (t, d, s)


def test_attention_moves_from_the_twin_start():
    torch.manual_seed(0)
    dyn = DynBlock(4, 4, n_branches=2, start='twin', norm='none', act='none')
    opt = torch.optim.SGD(dyn.parameters(), lr=0.1)
    for _ in range(100):
        s = torch.randint(0, 2, (16, 1, 1, 1)).float()*2 - 1
        x = torch.randn(16, 4, 6, 6)*0.3 + s
        loss = (dyn(x) - s*x).pow(2).mean(); opt.zero_grad(); loss.backward(); opt.step()
    a, s = dyn.last_attn, s.flatten()
    assert (a.max(1).values > 0.8).all()
    assert a[s > 0].argmax(1).unique().tolist() != a[s < 0].argmax(1).unique().tolist()


def test_router_and_gate():
    torch.manual_seed(0)
    x = torch.randn(5, 32, 6, 6)
    b = DynBlock(32, 8, n_branches=3, router='mlp', gate='sigmoid')
    assert isinstance(b.attn.bn, nn.BatchNorm1d) and b.attn.fc1.out_features == 16
    a = b.attention(x)
    assert a.shape == (5, 3) and ((a > 0) & (a < 2/3)).all()  # independent gates in (0, 2/L)
    assert not torch.allclose(a.sum(1), torch.ones(5))
    z = torch.tensor([[0., 0., 0.]])
    assert torch.allclose(Gate('sigmoid')(z), torch.full((1, 3), 1/3)) and torch.allclose(Gate('softmax')(z), torch.full((1, 3), 1/3))
    soft = DynBlock(32, 8, n_branches=3)
    assert type(soft.attn) is nn.Linear and torch.allclose(soft.attention(x).sum(1), torch.ones(5))
    b.temperature = 50.
    assert b.gate.temperature == 50.
    assert type(make_router('linear', 8, 2)) is nn.Linear
    assert Gate('sigmoid')(torch.tensor([[3.], [-7.]])).tolist() == [[1.], [1.]]  # one branch: weight 1, the static twin


def test_anneal_temperature_every_batch(cifar_root):
    from fastai.callback.core import Callback
    from dynblocks.data import cifar10_dls
    from dynblocks.learner import dyn_learner
    seen = []
    class Seen(Callback):
        order = 61
        def before_batch(self):
            if self.training: seen.append(next(m for m in self.learn.model.modules() if isinstance(m, DynBlock)).temperature)
    dls = cifar10_dls(cifar_root, n_train=400, n_valid=100, bs=50, seed=0)
    learn = dyn_learner(dls, 'dyn_tiny', model_kw=dict(width=0.25), seed=0, cbs=[AnnealTemperature(30, 1, 0.5), Seen()])
    with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-3)
    n = len(seen)
    assert n == 16 and seen[0] == 30 and seen[n//2:] == [1.]*(n - n//2)
    assert all(a > b for a, b in zip(seen[:n//2], seen[1:n//2]))


def test_attention_health_states():
    def state(a): return attention_state(*(attention_stats(a)/len(a)).tolist())
    one = torch.zeros(8, 4); one[:, 1] = 1
    half = torch.zeros(8, 2); half[:4, 0] = 1; half[4:, 1] = 1
    assert [state(torch.full((8, 4), 0.25)), state(one), state(half)] == ['uniform', 'collapsed', 'per-sample']
    assert torch.allclose(attention_stats(half)/8, torch.tensor([0., 0.5, 0.5]))
    sig = torch.tensor([[0.3, 1.2]]*8)  # sigmoid gates: a distribution once normalised, [0.2, 0.8]
    h = -(0.2*math.log(0.2) + 0.8*math.log(0.8))/math.log(2)
    assert abs(attention_stats(sig)[0].item()/8 - h) < 1e-5


def test_dynamic_only_in_chosen_groups():
    m = create_model('dyn_cpu', dynamic=[1, 2], n_branches=4)
    assert [b.n_branches for b in m.modules() if isinstance(b, DynBlock)] == [1, 4, 4]
    assert count_flops(m) < count_flops(create_model('dyn_cpu', n_branches=4))


def test_kernel_mixing_at_inference():
    "Linear branches: one mixed kernel per sample at inference computes what the fused branches compute, at the twin's conv FLOPs"
    torch.manual_seed(0)
    kw = dict(n_branches=4, start='twin', norm='after', act='after')
    m = create_model('dyn_cpu', **kw)
    x = torch.randn(4, 3, 32, 32)
    m.train(); m(x)  # sets the whitening filters from a batch
    with torch.no_grad():
        for b in m.modules():
            if isinstance(b, DynBlock): b.attn.weight.normal_(0, 1); b.delta.normal_(0, 0.05)  # a trained, per-sample state
    m.eval()
    with torch.no_grad(): fused = m(x)
    set_impl(m, 'aggregate')
    assert all(b.impl == 'aggregate' for b in m.modules() if isinstance(b, DynBlock))
    with torch.no_grad(): assert (m(x) - fused).abs().max() < 1e-4
    twin = count_flops(create_model('dyn_cpu', n_branches=1, norm='after', act='after'))
    assert count_flops(m) < 1.05*twin < count_flops(set_impl(m, "fused"))  # + mixing L kernels per sample


def test_dynamize_twin_steps_at_the_original_size():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)
    x = torch.randn(8, 4, 6, 6)
    steps = {}
    for start in ('copies', 'twin'):
        d = DynConv2d(conv, 4, start=start)
        before = d.kernels().detach().reshape(4, -1).mean(0).clone()
        opt = torch.optim.SGD(d.parameters(), lr=0.1)
        d(x).pow(2).mean().backward(); opt.step()
        steps[start] = (d.kernels().detach().reshape(4, -1).mean(0) - before).norm().item()
    c = nn.Conv2d(4, 4, 3, padding=1, bias=False); c.load_state_dict(conv.state_dict())
    opt = torch.optim.SGD(c.parameters(), lr=0.1); c(x).pow(2).mean().backward(); opt.step()
    orig = (c.weight.detach() - conv.weight.detach()).norm().item()
    assert steps['twin'] >= 0.99*orig and steps['copies'] < 0.3*orig, (steps, orig)


def test_own_presets_and_dynamize_default_to_the_twin_start():
    "The twin start is the default of dyn_tiny, dyn_fast, dyn_cpu and dynamize, one name (`start='twin'`) for both kinds of layer; the report presets keep the reports' block"
    from dynblocks.dynamize import dynamize, dyn_convs
    for name in ('dyn_tiny', 'dyn_fast', 'dyn_cpu'):
        bs = [b for b in create_model(name, width=0.25).modules() if isinstance(b, DynBlock)]
        assert bs and all(b.start == 'twin' and b.n_branches == 2 and b.delta is not None for b in bs), name
    for name in ('dyn_res4', 'dyn_macro7', 'dyn_deep11', 'dyn_pool4'):  # reports 000, 001, 003, 004 (002 is se_resnet)
        assert all(b.start == 'random' for b in create_model(name, width=0.25).modules() if isinstance(b, DynBlock)), name
    m = dynamize(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1)))
    assert [c.start for c in dyn_convs(m)] == ['twin', 'twin'] and all(c.delta is not None for c in dyn_convs(m))
