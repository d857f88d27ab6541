"`dynamize` on the model families fastai users train: torchvision, fastai, timm (when installed)."
import pytest, torch
from torch import nn
from dynblocks.dynamize import DynConv2d, dynamize, dyn_convs


def _families():
    from torchvision.models import resnet18, mobilenet_v2
    from fastai.vision.models.xresnet import xresnet18
    fams = [('torchvision.resnet18', lambda: resnet18(num_classes=10)),
            ('torchvision.mobilenet_v2', lambda: mobilenet_v2(num_classes=10)),
            ('fastai.xresnet18', lambda: xresnet18(n_out=10))]
    try:
        import timm
        fams.append(('timm.resnet18', lambda: timm.create_model('resnet18', num_classes=10)))
        fams.append(('timm.efficientnet_b0', lambda: timm.create_model('efficientnet_b0', num_classes=10)))
    except ImportError: pass
    return fams

FAMILIES = _families()


def _pretrained_style(m):
    "BatchNorm statistics and affine parameters away from their defaults, as a trained network has them"
    g = torch.Generator().manual_seed(1)
    for bn in m.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=g)*0.1)
            bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
            if bn.affine: bn.weight.data.copy_(1 + 0.2*torch.randn(bn.num_features, generator=g)); bn.bias.data.copy_(0.1*torch.randn(bn.num_features, generator=g))
    return m


@pytest.fixture(params=FAMILIES, ids=[n for n, _ in FAMILIES])
def pair(request):
    torch.manual_seed(0)
    name, make = request.param
    orig = _pretrained_style(make()).eval()
    import copy
    dyn = dynamize(copy.deepcopy(orig), n_branches=4).eval()
    return name, orig, dyn


def test_equal_at_creation_and_weights_kept(pair):
    name, orig, dyn = pair
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad(): a, b = orig(x), dyn(x)
    assert (a - b).abs().max() < 1e-5 * a.abs().max(), (name, (a - b).abs().max())  # float32: to its rounding
    with torch.no_grad(): a, b = orig.double()(x.double()), dyn.double()(x.double())
    orig.float(); dyn.float()
    assert (a - b).abs().max() < 1e-5, (name, (a - b).abs().max())  # float64: the construction is exact
    n3 = sum(1 for m in orig.modules() if type(m) is nn.Conv2d and m.kernel_size == (3, 3))
    assert len(dyn_convs(dyn)) == n3 > 0
    so, sd = orig.state_dict(), dyn.state_dict()
    replaced = tuple(n + '.' for n, m in dyn.named_modules() if isinstance(m, DynConv2d))
    kept = [k for k in so if not k.startswith(replaced)]
    assert kept and all(torch.equal(so[k], sd[k]) for k in kept)  # BatchNorm and every other layer untouched


def test_train_eval_channels_last(pair):
    name, orig, dyn = pair
    dyn.train()
    x = torch.randn(4, 3, 64, 64)
    dyn(x).logsumexp(1).mean().backward()
    for c in dyn_convs(dyn):
        assert c.weight.grad is not None and torch.isfinite(c.weight.grad).all()
        assert c.attn.weight.grad.abs().sum() > 0  # the attention learns (the branches differ)
    dyn.eval()
    with torch.no_grad():
        a = dyn(x)
        b = dyn.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    dyn.to(memory_format=torch.contiguous_format)
    assert (a - b).abs().max() < 1e-4


def test_compile_and_export(pair):
    name, orig, dyn = pair
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = dyn(x)
        got = torch.compile(dyn, fullgraph=True, backend='aot_eager')(x)
    assert (got - want).abs().max() < 1e-4
    batch = torch.export.Dim('batch', min=1, max=64)
    ep = torch.export.export(dyn, (x,), dynamic_shapes=({0: batch},))  # any batch size
    with torch.no_grad():
        y5 = ep.module()(torch.randn(5, 3, 64, 64))
    assert y5.shape == (5, 10)


def test_conv_options_and_errors():
    x = torch.randn(2, 8, 9, 9)
    for c in [nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 4, 3, stride=2, dilation=2, padding=2, bias=False),
              nn.Conv2d(8, 6, 3, padding='same', padding_mode='circular')]:
        for impl in ('fused', 'aggregate'): assert (DynConv2d(c, 3, impl=impl)(x) - c(x)).abs().max() < 1e-5
    with pytest.raises(Exception, match='no convolution'): dynamize(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(Exception, match='`filter` must be'): dynamize(nn.Sequential(nn.Conv2d(2, 2, 3)), filter=3)


def test_vision_learner_frozen_body_gets_the_new_parameters(monkeypatch):
    "With pretrained weights `vision_learner` freezes the body before `dynamize` adds parameters: the optimiser is rebuilt, still frozen"
    import dynblocks.learner as dl
    from fastai.vision.learner import vision_learner
    from torchvision.models import resnet18
    from dynblocks.cifar import sample_path
    from dynblocks.data import cifar10_dls
    def pretrained_like(*a, **kw):  # what vision_learner(pretrained=True) does, without downloading weights
        learn = vision_learner(*a, **kw); learn.freeze(); return learn
    monkeypatch.setattr(dl, 'vision_learner', pretrained_like)
    dls = cifar10_dls(sample_path(), n_train=64, n_valid=32, bs=32, seed=0)
    learn = dl.dyn_vision_learner(dls, resnet18, pretrained=False, n_branches=2)
    in_opt = {id(p) for pl in learn.opt.param_lists for p in pl}
    new = [p for c in dyn_convs(learn.model) for p in c.parameters()]
    assert new and all(id(p) in in_opt for p in new)
    assert learn.opt.frozen_idx == 2 and not any(p.requires_grad for c in dyn_convs(learn.model) for p in (c.weight, c.attn.weight))
