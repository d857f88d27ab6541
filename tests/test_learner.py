"Everything fastai offers, on a dyn_learner, on small real data (CPU)."
import warnings
import numpy as np, pytest, torch
from PIL import Image
from fastai.callback.all import (MixUp, CutMix, GradientClip, GradientAccumulation, SaveModelCallback,
                                 EarlyStoppingCallback, CSVLogger)
from fastai.interpret import ClassificationInterpretation
from fastai.learner import load_learner
from dynblocks.data import cifar10_dls
from dynblocks.learner import dyn_learner
from dynblocks.recipes import recipe, list_recipes, recipe_dls
from dynblocks.attention import BranchWeights

@pytest.fixture(scope='module')
def dls(cifar):
    return cifar10_dls(cifar, n_train=400, n_valid=200, bs=50, seed=0)

def tiny(dls, **kw):
    return dyn_learner(dls, 'dyn_tiny', model_kw=dict(width=0.25), seed=0, **kw)

def fitted(learn, n=1, lr=3e-3, **kw):
    with learn.no_bar(): learn.fit_one_cycle(n, lr, **kw)
    return learn

def test_lr_find_suggests(dls):
    learn = tiny(dls)
    with learn.no_bar(): res = learn.lr_find(num_it=20, show_plot=False)
    assert 1e-7 < res.valley < 10

@pytest.mark.parametrize('fit', ['fit_one_cycle', 'fit_flat_cos', 'fit_sgdr'])
def test_schedules(dls, fit):
    learn = tiny(dls)
    with learn.no_bar():
        if fit == 'fit_sgdr': learn.fit_sgdr(1, 1, 3e-3)
        else: getattr(learn, fit)(1, 3e-3)
    assert np.isfinite(learn.recorder.values[-1][0])
    assert 'train_accuracy' in learn.recorder.metric_names  # train metrics recorded, as the reports plotted

@pytest.mark.parametrize('prec', ['to_fp16', 'to_bf16'])
def test_mixed_precision(dls, prec):
    learn = getattr(tiny(dls), prec)()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # on the CPU fastai's MixedPrecision disables its CUDA autocast
        fitted(learn)
    assert np.isfinite(learn.recorder.values[-1][0])

@pytest.mark.parametrize('cb', [MixUp(0.4), CutMix(1.0), GradientClip(0.5), GradientAccumulation(100)])
def test_training_callbacks(dls, cb):
    learn = fitted(tiny(dls, cbs=cb))
    assert np.isfinite(learn.recorder.values[-1][0])

def test_checkpoints_early_stopping_csv(dls, tmp_path):
    learn = tiny(dls, path=tmp_path)
    cbs = [SaveModelCallback(monitor='valid_loss', fname='best'), EarlyStoppingCallback(patience=1), CSVLogger()]
    fitted(learn, 2, cbs=cbs)
    assert (tmp_path/'models'/'best.pth').exists()
    assert (tmp_path/'history.csv').read_text().startswith('epoch,train_loss,train_accuracy,valid_loss,valid_accuracy')

def test_summary_show_results_interpretation(dls):
    learn = fitted(tiny(dls))
    s = learn.summary()
    assert 'DynNet' in s and 'Total params' in s
    learn.show_results(max_n=4)
    interp = ClassificationInterpretation.from_learner(learn)
    cm = interp.confusion_matrix()
    assert cm.shape == (10, 10) and cm.sum() == 200
    interp.plot_confusion_matrix(); interp.plot_top_losses(4)

def test_tta(dls):
    learn = fitted(tiny(dls))
    with learn.no_bar(): preds, targs = learn.tta(n=2)
    assert preds.shape == (200, 10) and torch.allclose(preds.sum(1), torch.ones(200), atol=1e-4)

def test_export_load_predict_png(dls, tmp_path, cifar):
    learn = fitted(tiny(dls, path=tmp_path))
    learn.export('model.pkl')
    assert (tmp_path/'model.pkl').stat().st_size < 5e6  # the exported learner carries no data
    x = cifar['test'][0][0]
    png = tmp_path/'cat.png'; Image.fromarray(x).save(png)
    rgba = tmp_path/'rgba.png'; Image.fromarray(x).convert('RGBA').save(rgba)
    loaded = load_learner(tmp_path/'model.pkl')
    cls, i, probs = loaded.predict(png)
    assert cls in dls.vocab and probs.shape == (10,)
    # the same prediction as the training learner on the same pixels
    torch.testing.assert_close(probs, learn.predict(png)[2], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(loaded.predict(rgba)[2], probs, rtol=1e-4, atol=1e-5)

def test_save_load(dls, tmp_path):
    learn = fitted(tiny(dls, path=tmp_path))
    learn.save('w')
    other = tiny(dls, path=tmp_path).load('w')
    x = dls.one_batch()[0]
    learn.model.eval(); other.model.eval()
    torch.testing.assert_close(learn.model(x), other.model(x))

def test_channels_last_and_compile(dls):
    "fastai's ChannelsLast (added once by dyn_learner) and PyTorch's in-place compile, which keeps parameter names"
    learn = tiny(dls)
    assert sum(type(c).__name__ == 'ChannelsLast' for c in learn.cbs) == 1
    learn.model.compile(backend='aot_eager')
    fitted(learn)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in learn.model.parameters() if p.ndim == 4)
    assert list(learn.model.state_dict())[0].startswith('body.'), list(learn.model.state_dict())[:2]

def test_branch_weights(dls, tmp_path):
    learn = fitted(tiny(dls, cbs=BranchWeights()), 2)
    h = learn.branch_weights.history
    assert len(h) == 2 and len(h[-1]['mean']) == 3
    for m in h[-1]['mean']: assert abs(float(m.sum()) - 1) < 1e-4
    learn.plot_branch_weights(tmp_path/'bw.png'); learn.plot_training(tmp_path/'tr.png')
    assert (tmp_path/'bw.png').stat().st_size > 1000 and (tmp_path/'tr.png').stat().st_size > 1000

@pytest.mark.parametrize('name', list_recipes())
def test_every_recipe_builds_and_steps(cifar, name):
    r = recipe(name)
    dls = recipe_dls(r, cifar, n_train=200, n_valid=100, bs=min(r.bs, 50), seed=0)
    learn = dyn_learner(dls, recipe=r, model_kw=dict(width=0.125), seed=0)
    assert learn.recipe.name == name
    with learn.no_bar(): learn.fit_recipe(epochs=1)
    assert np.isfinite(learn.recorder.values[-1][0])

def test_seed_makes_cpu_runs_repeatable(cifar):
    mk = lambda: cifar10_dls(cifar, n_train=400, n_valid=200, bs=50, seed=0, aug='seed003')
    a, b = fitted(tiny(mk())), fitted(tiny(mk()))
    for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        torch.testing.assert_close(v, w, msg=k)

def test_errors(dls):
    with pytest.raises(ValueError, match='has 10 classes'): dyn_learner(dls, 'dyn_tiny', n_out=3)
    with pytest.raises(ValueError, match="Unknown model 'resnet50'"): dyn_learner(dls, 'resnet50')
    with pytest.raises(ValueError, match="Unknown recipe 'seed9'"): dyn_learner(dls, recipe='seed9')
    with pytest.raises(ValueError, match='no labels'): dyn_learner(dls.test_dl([dls.valid_ds[0][0]]))

def test_one_default_for_every_path():
    "dyn_learner, dynblocks train and dyn_tune trials all take their defaults from recipe('default')"
    from dynblocks.train import RunConfig
    from dynblocks.tune import trial_config
    from dynblocks.cli import make_parser, config_from_args
    d = recipe('default')
    cli = config_from_args(make_parser().parse_args(['train'])).resolved()
    trial = trial_config(RunConfig(), {}).resolved()
    assert (cli.arch, cli.lr, cli.opt, cli.wd, cli.epochs) == (trial.arch, trial.lr, trial.opt, trial.wd, trial.epochs) == \
           (d.arch, d.lr, d.opt, d.wd, d.epochs)
    import inspect
    assert inspect.signature(dyn_learner).parameters['recipe'].default == 'default'

def test_slow_on_cpu_note(monkeypatch):
    "On a CPU, dyn_learner says in one line when an epoch would be slow (dyn_res4 at 48 px), not for dyn_tiny at 32 px, never on a GPU"
    import dynblocks.learner as dl
    from fastai.vision.all import ImageDataLoaders, Resize
    from dynblocks.cifar import sample_path
    folder = lambda device: ImageDataLoaders.from_folder(sample_path(), valid='test', item_tfms=Resize(48), bs=64, device=device)
    with pytest.warns(dl.SlowOnCPUWarning, match=r"^dyn_res4 at 48×48 px costs 8\.4 GFLOPs per image: about [\d.]+ (s|min|h) "
                      r"per epoch of 1,000 images .*lr_find: up to .*; for a CPU try dyn_learner\(dls, 'dyn_tiny'\)"):
        dyn_learner(folder('cpu'), 'dyn_res4')  # the 1,000 training images of the sample at 48 px
    with warnings.catch_warnings():
        warnings.simplefilter('error', dl.SlowOnCPUWarning)
        dyn_learner(folder(None), 'dyn_res4', cpu_note=False)
        dyn_learner(cifar10_dls(sample_path(), bs=64, seed=0, device='cpu'), 'dyn_tiny')  # 1,000 images at 32 px
        cuda = folder('cpu')
        cuda.device = torch.device('cuda')  # batches for a GPU: never fetched here (no GPU needed), so `_peek` is replaced
        monkeypatch.setattr(dl, '_peek', lambda dls: (True, 3, 48))
        dyn_learner(cuda, 'dyn_res4')

def test_recipe_n_train_is_a_cap_a_run_can_override(monkeypatch, cifar_root):
    "A recipe's `n_train` (cpu10's subset) trains on at most that many images; `RunConfig.n_train` overrides it"
    import dynblocks.recipes as R
    from dynblocks.cifar import load_cifar10
    from dynblocks.train import RunConfig, train_run
    R.register_recipe(R.Recipe('sub300', 'dyn_tiny', n_train=300, epochs=1, bs=100), replace=True)
    from dynblocks.cifar import stratified_idxs
    d = load_cifar10(cifar_root, download=False)
    i = stratified_idxs(d['train'][1], 600, seed=0)  # 60 images per class, so subsets of 300 and 500 are stratified too
    d = {**d, 'train': (d['train'][0][i], d['train'][1][i]), 'test': (d['test'][0][:100], d['test'][1][:100])}
    run = lambda **kw: train_run(RunConfig(recipe='sub300', width=0.25, **kw), data=d, log=False).run_summary['n_train']
    assert run() == 300 and run(n_train=500) == 500
    R.register_recipe(R.Recipe('sub300', 'dyn_tiny', n_train=5000, epochs=1, bs=100), replace=True)
    assert run() == 600  # more than the data holds: all of it

def test_flops_count_falls_back_to_the_real_model():
    "A forward the meta device cannot run (it reads a value back) is counted on a real model, the global RNG untouched"
    import torch
    from torch import nn
    from dynblocks.learner import _flops
    from dynblocks.models import MODELS, register_model, count_flops
    class _ReadsBack(nn.Module):
        def __init__(self, n_out=10, n_in=3): super().__init__(); self.conv = nn.Conv2d(n_in, n_out, 3)
        def forward(self, x): return self.conv(x) * float(x.std() + 1)
    assert _flops(_ReadsBack(), 32) == count_flops(_ReadsBack(), 32)
    register_model(_ReadsBack)
    try:
        rng = torch.random.get_rng_state()
        assert _flops('_ReadsBack', 32) == 2*10*3*9*30*30
        assert torch.equal(torch.random.get_rng_state(), rng)
    finally: MODELS.pop('_ReadsBack')

def test_mixed_precision_unscales_before_clipping(cifar):
    "seed000 (fp16 with a GradScaler, clipping at 0.5): fastai's `MixedPrecision` unscales the gradients before `GradientClip` clips them"
    from fastcore.foundation import L
    from fastai.callback.fp16 import MixedPrecision
    from dynblocks.learner import _precision_cb
    mp = _precision_cb('fp16', 'cuda')  # what dyn_learner adds for seed000 on a GPU
    assert isinstance(mp, MixedPrecision) and mp.order < GradientClip.order  # fastai runs callbacks by `order`
    class CPUMixedPrecision(MixedPrecision):
        "fastai's callback unchanged, but with autocast and a GradScaler on the CPU (fastai's asks for CUDA)"
        def before_fit(self):
            self.autocast = torch.autocast('cpu', dtype=torch.bfloat16)
            self.learn.scaler, self.scales = torch.amp.GradScaler('cpu', init_scale=2.**16), L()
    dls = cifar10_dls(cifar, n_train=200, n_valid=50, bs=50, seed=0)
    learn = dyn_learner(dls, recipe='seed000', model_kw=dict(width=0.125), seed=0, cbs=[CPUMixedPrecision('fp16')], cpu_note=False)
    clip = next(c for c in learn.cbs if isinstance(c, GradientClip))
    assert clip.max_norm == 0.5
    norm = lambda: torch.nn.utils.get_total_norm([p.grad for p in learn.model.parameters() if p.grad is not None]).item()
    true, seen = [], []
    from fastai.callback.core import Callback
    class Truth(Callback):  # the true gradient norm right after backward (scaled / scale)
        def after_backward(self): true.append(norm()/self.learn.scaler.get_scale())
    before = clip.before_step
    def spy(): seen.append(norm()); before()  # the norm `GradientClip` clips
    clip.before_step = spy
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 0.01, cbs=[Truth()])
    assert len(seen) == len(true) == 4
    for t, s in zip(true, seen): assert abs(s/t - 1) < 1e-3, (t, s)  # unscaled: scaled first, it would be 65,536 times larger
    assert max(true) > 0.5  # so the clipping did clip
