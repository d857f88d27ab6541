"One sweep over the registry: every model, every property (timm's way)."
import pytest, torch
from dynblocks.models import list_models, create_model

MODELS = list_models()

@pytest.fixture(scope='module', params=MODELS)
def model(request):
    torch.manual_seed(0)
    return request.param, create_model(request.param, n_out=7, n_in=3)

def test_registry_complete():
    assert {'dyn_res4', 'dyn_macro7', 'se_resnet', 'dyn_deep11', 'dyn_pool4', 'dyn_fast', 'dyn_tiny'} <= set(MODELS)

def test_forward_backward(model):
    name, m = model
    m.train()
    x = torch.randn(4, 3, 32, 32)
    y = m(x)
    assert y.shape == (4, 7), name
    assert torch.isfinite(y).all(), name
    y.pow(2).mean().backward()
    from dynblocks.models import PatchWhiten
    whiten = {id(w.conv.weight) for w in m.modules() if isinstance(w, PatchWhiten)}
    frozen = [n for n, p in m.named_parameters() if not p.requires_grad and id(p) not in whiten]
    assert not frozen, f"{name}: frozen parameters outside a whitening stem: {frozen}"
    trained = [(n, p) for n, p in m.named_parameters() if p.requires_grad]  # a whitening stem's filters are set from data, frozen
    missing = [n for n, p in trained if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"{name}: parameters without a finite gradient: {missing[:5]}"
    zero = [n for n, p in trained if p.grad.abs().sum() == 0]
    assert not zero, f"{name}: parameters with an all-zero gradient: {zero[:5]}"
    m.zero_grad(set_to_none=True)

def test_eval_deterministic_and_channels_last(model):
    name, m = model
    m.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        a, b = m(x), m(x)
        c = m.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    m.to(memory_format=torch.contiguous_format)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(c, a, rtol=1e-4, atol=1e-4)

@pytest.mark.parametrize('n_in,size,n_out', [(1, 28, 5), (3, 64, 100)])
def test_other_inputs(n_in, size, n_out):
    for name in MODELS:
        m = create_model(name, n_out=n_out, n_in=n_in, width=0.25).eval()
        if size < m.min_size: continue
        with torch.no_grad(): assert m(torch.randn(2, n_in, size, size)).shape == (2, n_out), name

def test_too_small_input_says_what_is_needed():
    for name in MODELS:
        m = create_model(name, width=0.25).eval()
        if m.min_size <= 1: continue
        with pytest.raises(ValueError, match=f'at least {m.min_size}×{m.min_size}'):
            m(torch.randn(1, 3, m.min_size - 1, m.min_size - 1))

def test_compile_traces_whole_graph(model):
    "torch.compile with fullgraph (dynamo + AOT autograd, eager kernels: the inductor code generation is a slow test)"
    name, m = model
    m.eval()
    x = torch.randn(2, 3, 32, 32)
    torch._dynamo.reset()
    cm = torch.compile(m, backend='aot_eager', fullgraph=True)
    with torch.no_grad(): torch.testing.assert_close(cm(x), m(x), rtol=1e-4, atol=1e-4)

def test_export(model):
    name, m = model
    m.eval()
    x = torch.randn(2, 3, 32, 32)
    ep = torch.export.export(m, (x,))
    with torch.no_grad(): torch.testing.assert_close(ep.module()(x), m(x), rtol=1e-4, atol=1e-4)

@pytest.mark.slow
def test_inductor_compile_train_step():
    "Real inductor code generation for a training step (minutes on a 2-core CPU: `pytest -m slow`)"
    m = create_model('dyn_tiny')
    cm = torch.compile(m)
    x = torch.randn(8, 3, 32, 32)
    cm(x).sum().backward()
    assert all(p.grad is not None for p in m.parameters())

def test_impl_switch_keeps_function():
    "Switching a model between implementations keeps its function; blocks with linear branches really aggregate"
    from dynblocks.block import set_impl, DynBlock, Impl
    m = create_model('dyn_res4', width=0.25, act='after').eval()  # linear branches: kernels can be aggregated
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = m(x)
        for impl in ('reference', 'aggregate'):
            set_impl(m, impl)
            assert {b.impl for b in m.modules() if isinstance(b, DynBlock)} == {Impl(impl)}  # not silently `fused`
            torch.testing.assert_close(m(x), ref, rtol=1e-4, atol=1e-4)

def test_whitening_stem_set_once_from_the_first_training_batch():
    "dyn_cpu's PatchWhiten: filters from the first training batch (whitened patches), then frozen; eval never sets them"
    from dynblocks.models import PatchWhiten
    torch.manual_seed(0)
    m = create_model('dyn_cpu', width=0.25)
    pw = next(x for x in m.modules() if isinstance(x, PatchWhiten))
    w_init = pw.conv.weight.clone()
    m.eval(); m(torch.randn(2, 3, 32, 32))
    assert not pw.ready and torch.equal(pw.conv.weight, w_init)
    x = torch.rand(64, 3, 32, 32)
    m.train(); m(x)
    assert pw.ready and not torch.equal(pw.conv.weight, w_init)
    w = pw.conv.weight.clone()
    m(torch.rand(64, 3, 32, 32)); assert torch.equal(pw.conv.weight, w)  # set once
    y = torch.nn.functional.conv2d(x, w[:12]).permute(0, 2, 3, 1).reshape(-1, 12)
    c = torch.cov(y.T)
    torch.testing.assert_close(c - c.diag().diag(), torch.zeros(12, 12), atol=1e-3, rtol=0)  # decorrelated patches
