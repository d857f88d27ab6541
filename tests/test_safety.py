"Files from elsewhere never run code, a run never loses its work, and every mistake gets one line (issue: trust)."
import json, os, pickle, random, subprocess, sys, time
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image
from dynblocks.core import DynblocksError
from dynblocks.cifar import load_cifar10, save_cifar10, read_image, sample_path

EXE = Path(sys.executable).parent/'dynblocks'

def run(*args, cwd=None):
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd,
                          env={**os.environ, 'CI': 'true'})

class Payload:
    "What a malicious file holds: unpickling it runs a shell command that creates `marker`"
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (os.system, (f'touch {self.marker}',))

@pytest.fixture(scope='module')
def sample():
    return load_cifar10(sample_path())

@pytest.fixture
def pickles(tmp_path, sample):
    return save_cifar10(tmp_path/'cifar-10-batches-py', sample, 'pickle')

@pytest.mark.parametrize('fname', ['batches.meta', 'data_batch_2', 'test_batch'])
def test_malicious_cifar_pickle_runs_nothing(pickles, tmp_path, fname):
    marker = tmp_path/'pwned'
    (pickles/fname).write_bytes(pickle.dumps({b'data': Payload(marker), b'labels': [], b'label_names': Payload(marker)}))
    with pytest.raises(DynblocksError, match=f'{fname} is not a readable CIFAR-10 pickle.*no CIFAR-10 batch holds'):
        load_cifar10(pickles)
    assert not marker.exists()

def test_malicious_checkpoint_and_export_run_nothing(tmp_path, cli):
    "In this process (`cli`): a payload that ran would create the marker here just as in a subprocess"
    marker, png = tmp_path/'pwned', tmp_path/'x.png'
    Image.new('RGB', (32, 32)).save(png)
    out = tmp_path/'run'; out.mkdir()
    torch.save({'config': Payload(marker)}, out/'checkpoint.pth')  # torch's own format, a pickle inside
    r = cli('train', '--out', out, '--resume')
    assert r.returncode == 2 and 'is not a readable dynblocks checkpoint' in r.stderr, r.stderr
    with open(out/'model.pkl', 'wb') as f: pickle.dump(Payload(marker), f)
    r = cli('predict', out/'model.pkl', png)
    assert r.returncode == 2 and 'opening it can run code' in r.stderr, r.stderr
    assert not marker.exists()

def test_fuzz_random_and_truncated_files(tmp_path, pickles, sample):
    "Random and truncated bytes as CIFAR batches, images, checkpoints, safe models and ONNX files: clear errors only, nothing written"
    from dynblocks.checkpoint import load_checkpoint
    from dynblocks.export import load_model, export_onnx, load_onnx
    from dynblocks.models import create_model
    rng = random.Random(0)
    good_png = tmp_path/'good.png'; Image.fromarray(sample['train'][0][0]).save(good_png)
    good = {'batch': (pickles/'data_batch_1').read_bytes(), 'png': good_png.read_bytes(),
            'ckpt': torch.save({'a': torch.ones(3)}, tmp_path/'c.pth') or (tmp_path/'c.pth').read_bytes()}
    m = create_model('dyn_tiny', width=0.25).eval()
    m.meta = dict(format='dynblocks-model-1', arch='dyn_tiny', model_kw=dict(width=0.25), n_in=3, n_out=10, size=32, vocab=[], normalize=None)
    good['onnx'] = export_onnx(m, tmp_path/'m.onnx', check=False).read_bytes()
    fz = tmp_path/'fuzz'; fz.mkdir()
    def variants(b):
        yield bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        for _ in range(4): yield b[:rng.randrange(len(b))]
        c = bytearray(b); i = rng.randrange(len(c)); c[i] ^= 0xff; yield bytes(c)
    cases = 0
    for kind, b in good.items():
        for v in variants(b):
            before = sorted(p.name for p in fz.rglob('*'))
            if kind == 'batch':
                (pickles/'data_batch_1').write_bytes(v)
                try: load_cifar10(pickles)
                except DynblocksError: pass
            elif kind == 'png':
                f = fz/'img.png'; f.write_bytes(v)
                try: read_image(f)
                except DynblocksError: pass
                f.unlink()
            elif kind == 'ckpt':
                f = fz/'checkpoint.pth'; f.write_bytes(v)
                try: load_checkpoint(f)
                except DynblocksError: pass
                f.unlink()
            else:
                f = fz/'model.onnx'; f.write_bytes(v)
                try: load_onnx(f)(torch.zeros(1, 3, 32, 32))  # a flipped byte may leave a loadable file: it runs or says why not
                except DynblocksError: pass
                f.unlink()
            assert sorted(p.name for p in fz.rglob('*')) == before
            cases += 1
    (fz/'model.json').write_text('{"format": "dynblocks-model-1", "arch": "dyn_tiny", "model_kw": {}, "n_in": 3, "n_out": 10, '
                                 '"size": 32, "vocab": [], "normalize": null}')
    for v in variants(b'\0' * 64):
        (fz/'model.safetensors').write_bytes(v)
        with pytest.raises(DynblocksError): load_model(fz)
        cases += 1
    (fz/'model.json').write_text('{not json')
    with pytest.raises(DynblocksError, match='is not valid JSON'): load_model(fz)
    assert cases >= 30

def _safe_model(folder, arch='dyn_tiny', **kw):
    "model.json + model.safetensors of a fresh `arch` (no training), as `save_model` writes them; returns the JSON content"
    from safetensors.torch import save_file
    from dynblocks.models import create_model
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in create_model(arch, **kw).state_dict().items()}, str(folder/'model.safetensors'))
    meta = dict(format='dynblocks-model-1', arch=arch, model_kw=kw, n_in=3, n_out=10, size=32, vocab=[f'c{i}' for i in range(10)],
                normalize=[[0.49, 0.48, 0.45], [0.25, 0.24, 0.26]])
    (folder/'model.json').write_text(json.dumps(meta))
    return meta

FIELDS = ['format', 'arch', 'model_kw', 'n_in', 'n_out', 'size', 'vocab', 'normalize', 'model_kw.width', 'model_kw.n_branches',
          'model_kw.ks', 'model_kw.stride', 'model_kw.drop', 'model_kw.act_cls', 'model_kw.impl', 'model_kw.norm', 'model_kw.head',
          'model_kw.temperature', 'model_kw.residual', 'model_kw.init', 'model_kw.no_such_option', 'made_by']
VALUES = [None, True, 0, -1, 1, 2, 3, 7, 2.5, 0.5, 1e-300, 1e308, float('inf'), float('nan'), 10**30, -10**30, '', '3', 'x'*5000,
          'torch.nn.ReLU', 'dyn_res4', 'fused', [], [3, 5], [1]*1000, [[0.5]*3, [0.0]*3], {}, {'hidden': [10**7]}, {'width': 1e4}]
OK_MSG = ("does not hold the weights", "more than load_model's cap", "Unknown ", "is not a dynblocks-model-1 file", "`size` must be at least")

def test_fuzz_model_json_values(tmp_path, monkeypatch):
    "Every field of a model.json set to odd values: a one-line error naming the field (or the mismatch with the weights), "
    "never a traceback, a hang or a large allocation, and no model built outside the meta device; values that fit are loaded"
    import resource, time
    import dynblocks.export as E
    from dynblocks.export import load_model
    base = _safe_model(tmp_path/'m', width=0.25)
    built, create = [], E.create_model
    def spy(*a, **kw):  # records every build with real tensors
        if torch.empty(0).device.type != 'meta': built.append(a)
        return create(*a, **kw)
    monkeypatch.setattr(E, 'create_model', spy)
    rss0, t0, seen = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.time(), {'loaded': 0, 'refused': 0}
    for field in FIELDS:
        for v in VALUES + ['<deleted>']:
            meta = json.loads(json.dumps(base)); *up, last = field.split('.')
            d = meta[up[0]] if up else meta
            if v == '<deleted>': d.pop(last, None)
            else: d[last] = v
            (tmp_path/'m'/'model.json').write_text(json.dumps(meta))
            built.clear()
            try: m = load_model(tmp_path/'m')
            except DynblocksError as e:
                msg = str(e)
                assert not built, (field, v, msg)  # refused before anything was allocated
                assert '\n' not in msg and len(msg) < 1000, (field, v, msg)
                assert f'`{field}' in msg or f'`{last}' in msg or f'{last}=' in msg or any(s in msg for s in OK_MSG), (field, v, msg)  # names what is wrong
                seen['refused'] += 1
            else:
                assert m.meta == meta and sum(p.numel() for p in m.parameters()) < 1e6, (field, v)
                seen['loaded'] += 1
    assert seen['loaded'] >= 10 and seen['refused'] >= 400, seen  # e.g. `"residual": true` fits the weights of a residual-free net
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 1_000_000, 'a refused file allocated memory'  # kB
    assert time.time() - t0 < 120

def test_every_model_sized_before_it_is_built(tmp_path, capsys):
    "load_model sizes each registered model on the meta device exactly as built (so every one loads), the CLI answers in one line"
    import math
    from dynblocks.export import _model_shapes, load_model
    from dynblocks.models import create_model, list_models
    for a in list_models():
        assert _model_shapes(a, 3, 10, {}) == {k: tuple(v.shape) for k, v in create_model(a).state_dict().items()}, a
    _safe_model(tmp_path/'se', 'se_resnet', widths=[16, 32, 64, 128], ks=5, width=0.5)
    assert load_model(tmp_path/'se').meta['model_kw']['widths'] == [16, 32, 64, 128]
    with pytest.raises(DynblocksError, match="se_resnet with `model_kw` .* has [0-9,]+ parameters and buffers, more than load_model's cap of 1,000"):
        load_model(tmp_path/'se', max_params=1000)
    png = tmp_path/'x.png'; Image.new('RGB', (32, 32)).save(png)
    base = _safe_model(tmp_path/'m', width=0.25)
    (tmp_path/'m'/'model.json').write_text(json.dumps({**base, 'model_kw': {'width': 10000}}))  # the terabytes
    r = run('predict', tmp_path/'m', png)
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'Traceback' not in r.stderr, r.stderr
    assert '`model_kw.width` must be a finite number in [0.015625, 16], got 10000.' in r.stderr, r.stderr
    from dynblocks.cli import main
    (tmp_path/'m'/'model.json').write_text(json.dumps({**base, 'model_kw': {'act_cls': 'torch.nn.GELU'}}))  # a string for a class
    with pytest.raises(SystemExit) as e: main(['predict', str(tmp_path/'m'), str(png)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count('\n') == 1 and '`model_kw.act_cls` takes a class, which a model.json cannot hold' in err, err

def test_images_converted_as_training_data(tmp_path):
    g16 = tmp_path/'g16.png'; Image.fromarray(np.full((32, 32), 40000, np.uint16)).save(g16)
    assert read_image(g16)[0, 0].tolist() == [round(40000/65535*255)]*3  # not a white image
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert('CMYK').save(tmp_path/'c.jpg')
    Image.fromarray(rgb).convert('P').save(tmp_path/'p.png')
    Image.fromarray(rgb).convert('RGBA').save(tmp_path/'a.png')
    for f in ('c.jpg', 'p.png', 'a.png'):
        a = read_image(tmp_path/f); assert a.shape == (32, 32, 3) and a.dtype == np.uint8, f
    assert (read_image(tmp_path/'a.png') == rgb).all()
    big = tmp_path/'big.png'; Image.new('1', (12000, 12000)).save(big)  # 18 kB on disk, 144 M pixels
    import tracemalloc; tracemalloc.start()
    with pytest.raises(DynblocksError, match='12000×12000 pixels, more than dynblocks decodes'): read_image(big)
    assert tracemalloc.get_traced_memory()[1] < 50e6; tracemalloc.stop()  # refused from the header, nothing decoded
    (tmp_path/'bad.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0'*40)
    with pytest.raises(DynblocksError, match='bad.png'): read_image(tmp_path/'bad.png')

@pytest.fixture
def trained(tiny_run, tmp_path):
    "A copy of the session's tiny run (tests/conftest.py: trained once, 3 epochs): these tests write into it"
    from conftest import run_copy
    return run_copy(tiny_run, tmp_path/'trained')

def test_run_folder_rules(trained, tmp_path, cli):
    stamp = {f: (trained/f).stat().st_mtime_ns for f in ('model.json', 'model.safetensors', 'summary.json', 'checkpoint.pth')}
    r = cli('train', '--data', 'sample', '--epochs', '1', '--width', '0.25', '--out', trained)  # in this process: no imports to wait for
    assert r.returncode == 2 and 'already holds a run' in r.stderr and '--overwrite' in r.stderr, r.stderr
    r = cli('train', '--out', trained, '--resume')  # the options come from the checkpoint
    assert r.returncode == 0 and 'is complete' in r.stdout, r.stderr
    r = cli('train', '--out', trained, '--resume', '--epochs', '5')
    assert r.returncode == 2 and 'epochs=3 (not 5)' in r.stderr and 'another --out' in r.stderr, r.stderr
    assert stamp == {f: (trained/f).stat().st_mtime_ns for f in stamp}  # nothing was touched
    from filelock import FileLock
    other = tmp_path/'busy'; other.mkdir()
    (other/'.lock-holder').write_text('pid 4242 on somewhere')
    with FileLock(other/'.lock'):  # held by this process: the run must be another process
        r = run('train', '--data', 'sample', '--epochs', '1', '--out', other)
    assert r.returncode == 2 and 'in use by another run (pid 4242 on somewhere)' in r.stderr, r.stderr

def test_overwrite_replaces_and_nothing_in_data_or_package(trained, tmp_path, cli):
    import dynblocks
    pkg = Path(dynblocks.__file__).parent
    before = sorted(str(p) for p in pkg.rglob('*') if '__pycache__' not in str(p))
    r = cli('train', '--data', 'sample', '--n-train', '300', '--epochs', '1', '--width', '0.25', '--lr-find', '--out', trained,
            '--overwrite', cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((trained/'summary.json').read_text())['config']['lr_find'] is True
    assert sorted(str(p) for p in pkg.rglob('*') if '__pycache__' not in str(p)) == before  # no models/ in the sample
    from dynblocks.data import cifar10_dls
    from dynblocks.learner import dyn_learner
    cwd = os.getcwd(); os.chdir(tmp_path)
    try:
        learn = dyn_learner(cifar10_dls(sample_path(), n_train=100, n_valid=50, bs=50), model_kw=dict(width=0.25))
        with learn.no_bar(): learn.lr_find(num_it=5, show_plot=False)
        learn.save('w')
    finally: os.chdir(cwd)
    assert (tmp_path/'models'/'w.pth').exists()  # under the current directory, never the data folder
    assert sorted(str(p) for p in pkg.rglob('*') if '__pycache__' not in str(p)) == before

def test_predict_resizes_and_names_bad_files(tiny_run, tmp_path, cli):
    trained = tiny_run[0]
    big = tmp_path/'big.jpg'; Image.new('RGB', (64, 48), (10, 200, 30)).save(big)
    bad = tmp_path/'bad.png'; bad.write_bytes(b'garbage')
    r = cli('predict', trained, big)
    assert r.returncode == 0 and 'is 64×48; resized to 32×32' in r.stderr, r.stderr
    r = cli('predict', trained, bad)
    assert r.returncode == 2 and 'Cannot read image' in r.stderr and 'bad.png' in r.stderr and 'Traceback' not in r.stderr

def test_secrets_masked_and_cpu_precision_said(tmp_path, cli):
    r = cli('train', '--from-study', 's', '--storage', 'postgresql://me:S3cretPW@127.0.0.1:9/x')
    assert r.returncode == 2 and 'S3cretPW' not in r.stderr + r.stdout and 'me:***@' in r.stderr, r.stderr
    r = run('train', '--data', 'sample', '--epochs', '1', '--width', '0.25', '--n-train', '100', '--bs', '50', '--bf16', '--out', tmp_path/'p')
    assert r.returncode == 0 and 'bf16 mixed precision needs a CUDA GPU' in r.stderr, r.stderr

def test_bugs_keep_their_traceback(monkeypatch):
    "Only `DynblocksError` is shortened to one line: a bug (another ValueError) keeps its traceback"
    from dynblocks import cli
    monkeypatch.setattr(cli, '_recipes', lambda args: int('not a number'))
    with pytest.raises(ValueError, match='invalid literal'): cli.main(['recipes'])

def test_resumed_study_never_repeats_proposals(tmp_path, sample):
    optuna = pytest.importorskip('optuna')
    from dynblocks.tune import dyn_tune
    space = lambda t: dict(lr=t.suggest_float('lr', 1e-4, 1e-2, log=True))
    url = f'sqlite:///{tmp_path}/s.db'
    kw = dict(epochs=1, n_train=300, space=space, storage=url, study='s', seed=0)
    dyn_tune(sample, n_trials=2, **kw)
    st = dyn_tune(sample, n_trials=4, **kw)
    lrs = [t.params['lr'] for t in st.trials]
    assert len(lrs) == 4 and len(set(lrs)) == 4, lrs  # a resumed sampler seeded as before would propose lrs[:2] again
