"cifar10_dls on real data and on fixtures in both official layouts, and every kind of bad input."
import pickle, shutil
import numpy as np, pytest, torch
from PIL import Image
from dynblocks.cifar import load_cifar10, save_cifar10, find_cifar10, stratified_idxs, CIFAR10_CLASSES, sample_path
from dynblocks.data import cifar10_dls

@pytest.fixture(scope='module')
def real_small(cifar):
    "20 real training and 10 real test images per class, in memory"
    (xtr, ytr), (xte, yte) = cifar['train'], cifar['test']
    itr, ite = stratified_idxs(ytr, 200), stratified_idxs(yte[:1000], 100)
    # class-major order, as fastai's folder layout lists files (class by class, file names in original order)
    itr, ite = itr[np.argsort(ytr[itr], kind='stable')], ite[np.argsort(yte[ite], kind='stable')]
    return dict(train=(xtr[itr], ytr[itr]), test=(xte[ite], yte[ite]), classes=cifar['classes'])

@pytest.fixture()
def both(tmp_path, real_small):
    return (save_cifar10(tmp_path/'cifar-10-batches-py', real_small, 'pickle'),
            save_cifar10(tmp_path/'cifar10', real_small, 'folders'))

def test_real_data_as_published(cifar):
    (xtr, ytr), (xte, _) = cifar['train'], cifar['test']
    assert xtr.shape == (50000, 32, 32, 3) and xte.shape == (10000, 32, 32, 3)
    assert list(ytr[:10]) == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert np.bincount(ytr).tolist() == [5000]*10
    np.testing.assert_allclose((xtr/255).mean((0, 1, 2)), [0.4914, 0.4822, 0.4465], atol=1e-3)
    assert tuple(cifar['classes']) == CIFAR10_CLASSES

def test_both_layouts_identical_tensors(both):
    pk, fo = both
    a, b = load_cifar10(pk), load_cifar10(fo)
    for s in ('train', 'test'):
        np.testing.assert_array_equal(a[s][0], b[s][0]); np.testing.assert_array_equal(a[s][1], b[s][1])
    for fast in (True, False):
        da = cifar10_dls(pk, bs=50, aug='none', fast=fast, seed=0)
        db = cifar10_dls(fo, bs=50, aug='none', fast=fast, seed=0)
        for (xa, ya), (xb, yb) in zip(da.valid, db.valid):
            torch.testing.assert_close(xa, xb, rtol=0, atol=0); assert torch.equal(ya, yb)

def test_dls_work_with_fastai(real_small):
    dls = cifar10_dls(real_small, bs=32, seed=0)
    assert dls.c == 10 and list(dls.vocab) == list(CIFAR10_CLASSES)
    xb, yb = dls.one_batch()
    assert xb.shape == (32, 3, 32, 32) and xb.dtype == torch.float32 and yb.dtype == torch.int64
    assert abs(float(xb.mean())) < 0.5  # normalised
    dls.show_batch(max_n=4, show=False)

def test_seed_repeatable_and_stratified(cifar):
    a = cifar10_dls(cifar, n_train=300, n_valid=100, bs=50, seed=3, aug='seed003')
    b = cifar10_dls(cifar, n_train=300, n_valid=100, bs=50, seed=3, aug='seed003')
    for (xa, ya), (xb, yb) in zip(a.train, b.train):
        torch.testing.assert_close(xa, xb); assert torch.equal(ya, yb)
    ys = torch.cat([y for _, y in cifar10_dls(cifar, n_train=300, bs=50, seed=3, aug='none').train.new(shuffle=False, drop_last=False)])
    assert torch.bincount(ys).tolist() == [30]*10

def test_valid_fraction_and_exact_test(cifar):
    d = cifar10_dls(cifar, valid=0.1, n_valid=None, bs=500, aug='none')
    assert len(d.train_ds) == 45000 and len(d.valid_ds) == 5000
    d = cifar10_dls(cifar, n_train=500, n_valid=1000, bs=500, aug='none')
    assert len(d.valid_ds) == 1000  # test_batch[:1000], the exact images

@pytest.mark.parametrize('policy', ['none', 'crop_flip', 'seed000', 'seed003', 'airbench'])
def test_policies_both_paths(real_small, policy):
    for fast in (True, False):
        dls = cifar10_dls(real_small, bs=40, aug=policy, fast=fast, seed=0)
        xb, _ = dls.one_batch()
        assert xb.shape == (40, 3, 32, 32) and torch.isfinite(xb).all()
        if policy != 'none':  # augmentation changes the training images, never the validation ones
            plain = cifar10_dls(real_small, bs=40, aug='none', fast=fast, seed=0)
            assert not torch.allclose(xb, plain.one_batch()[0])

def test_bad_paths(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match='does not exist'): find_cifar10(tmp_path/'nope')
    with pytest.raises(FileNotFoundError, match='No CIFAR-10 in'): find_cifar10(tmp_path)
    monkeypatch.setenv('DYNBLOCKS_DATA', str(tmp_path))
    monkeypatch.setenv('FASTAI_HOME', str(tmp_path/'fastai_home'))
    with pytest.raises(FileNotFoundError, match=r'Looked in: \$DYNBLOCKS_DATA'): find_cifar10(download=False)

def _folders(tmp_path, real_small):
    return save_cifar10(tmp_path/'png', real_small, 'folders')

def test_rgba_grayscale_palette_become_rgb(tmp_path, real_small):
    p = _folders(tmp_path, real_small)
    x0 = real_small['train'][0][0]
    f = sorted((p/'train/airplane').iterdir())
    Image.fromarray(x0).convert('RGBA').save(f[0])
    Image.fromarray(x0).convert('L').save(f[1])
    Image.fromarray(x0).convert('P').save(f[2])
    x = load_cifar10(p)['train'][0]
    np.testing.assert_array_equal(x[0], x0)
    assert x[1].shape == (32, 32, 3) and (x[1][..., 0] == x[1][..., 1]).all()
    assert x[2].shape == (32, 32, 3)

def test_corrupt_and_odd_sized_images_named(tmp_path, real_small):
    p = _folders(tmp_path, real_small)
    f = sorted((p/'train/cat').iterdir())[3]
    f.write_bytes(b'\x89PNG\r\n\x1a\n garbage')
    with pytest.raises(ValueError, match=f.name): load_cifar10(p)
    Image.new('RGB', (33, 32)).save(f)
    with pytest.raises(ValueError, match='is 33×32'): load_cifar10(p)

def test_empty_extra_and_mismatched_class_folders(tmp_path, real_small):
    p = _folders(tmp_path, real_small)
    (p/'train/zebra').mkdir()
    with pytest.raises(ValueError, match='zebra'): load_cifar10(p)
    (p/'train/zebra').rmdir()
    shutil.rmtree(p/'test/dog'); (p/'test/dog').mkdir()
    with pytest.raises(ValueError, match='has no images'): load_cifar10(p)
    shutil.rmtree(p/'test/dog')
    with pytest.raises(ValueError, match='must match'): load_cifar10(p)

def test_bad_pickles(tmp_path, real_small):
    p = save_cifar10(tmp_path/'cifar-10-batches-py', real_small, 'pickle')
    fn = p/'data_batch_3'
    with open(fn, 'rb') as f: d = pickle.load(f)
    bad = dict(d); bad[b'data'] = bad[b'data'][:, :1000]
    with open(fn, 'wb') as f: pickle.dump(bad, f)
    with pytest.raises(ValueError, match=r'data_batch_3.*shape \(N, 3072\)'): load_cifar10(p)
    bad = dict(d); del bad[b'labels']
    with open(fn, 'wb') as f: pickle.dump(bad, f)
    with pytest.raises(ValueError, match=r"data_batch_3 has no 'labels' key"): load_cifar10(p)
    fn.write_bytes(b'not a pickle')
    with pytest.raises(ValueError, match='not a readable CIFAR-10 pickle'): load_cifar10(p)
    fn.unlink()
    with pytest.raises(FileNotFoundError, match='data_batch_3'): load_cifar10(p)

def test_sample_ships_real_images(cifar):
    s = load_cifar10(sample_path())
    assert s['train'][0].shape == (1000, 32, 32, 3) and s['test'][0].shape == (200, 32, 32, 3)
    # exact pixels: every sample test image is one of the exact first 1,000 official test images
    ref = cifar['test'][0][:1000].reshape(1000, -1)
    for x in s['test'][0][:20]: assert (ref == x.reshape(-1)).all(1).any()
