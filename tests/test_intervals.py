"The paired interval against known answers: coverage with and without an effect, the interval used before failing it, false positives under sequential looks, and a latency A/A."
import sys
from pathlib import Path
import numpy as np
import pytest
from dynblocks.measure import coverage, paired_interval, simulate_study, look_level, decide

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = [dict(seed_sd=0.02), dict(seed_sd=0.02, effect=0.05), dict(seed_sd=0.15), dict(seed_sd=0.15, effect=0.1, seeds=3)]

@pytest.mark.parametrize('kw', SETTINGS, ids=['none-small', 'effect-small', 'none-large', 'effect-large-3seeds'])
def test_coverage(kw):
    "Thousand simulated studies (2,000 test images each) with known image, seed and arm effects: the 95 % interval covers the truth 93-97 % of the time"
    c = coverage(paired_interval, studies=1000, images=2000, seed=1, **kw)
    assert 0.93 <= c['coverage'] <= 0.97, c

def test_the_interval_used_before_fails_coverage():
    "The independent bootstrap (each arm's seeds resampled apart) counts the seed noise the pairing removes: it covers nearly always, so it is too wide"
    sys.path.insert(0, str(ROOT/'bench'))
    from intervals import independent_bootstrap
    c = coverage(independent_bootstrap, studies=200, images=2000, seed=1, seed_sd=0.02)
    assert not 0.93 <= c['coverage'] <= 0.97 and c['coverage'] > 0.97, c

def test_false_positives_under_sequential_looks():
    "No effect, looked at after 3, 4 and 5 seeds: at `look_level` no more than 5 % of studies ever read a gain or a loss; at 95 % each, more do"
    def fpr(level, studies=1000):
        rng, hits = np.random.default_rng(2), 0
        for _ in range(studies):
            A, B = simulate_study(rng, seeds=5, images=2000, seed_sd=0.05)
            hits += any(decide(*paired_interval(A[:s], B[:s], level)[1:]) in ('gain', 'loss') for s in (3, 4, 5))
        return hits/studies
    corrected, naive = fpr(look_level(0.95, 3)), fpr(0.95)
    assert corrected <= 0.05 and naive > corrected, (corrected, naive)

def test_pairs_by_seed():
    "Seed s is paired with seed s: arms that differ only by a per-seed shift shared with the baseline read no difference"
    rng = np.random.default_rng(0)
    A = rng.random((5, 3000)) < np.linspace(0.6, 0.9, 5)[:, None]  # seeds of very different quality ...
    d, lo, hi = paired_interval(A, A.copy())  # ... shared by both arms: nothing left to vary
    assert (d, lo, hi) == (0., 0., 0.)
    with pytest.raises(Exception, match='same seeds and images'): paired_interval(A[:4], A)

@pytest.mark.serial  # timed: alone on the machine (dev.sh test runs the serial tests after the others)
def test_latency_aa():
    "Two copies of one network, timed side by side in blocks: 1.00× within ±5 % at batch 1 and 64, in PyTorch and ONNX Runtime"
    from dynblocks.models import create_model
    from dynblocks.measure import latencies, geo_interval
    m = create_model('dyn_tiny', width=0.5, n_branches=2, norm='after', act='after').eval()  # a dynamic net: the implementation race too
    m.meta = dict(arch='dyn_tiny', model_kw=dict(width=0.5, n_branches=2, norm='after', act='after'), n_in=3, n_out=10, size=32, vocab=[], normalize=None)
    lat = latencies({'a': m, 'b': m}, max_s=60)
    ratios = {k: geo_interval(lat['a']['calls'][k]['blocks'], lat['b']['calls'][k]['blocks']) for k in lat['a']['calls']}
    assert len(ratios) == 4 and all(0.95 <= r <= 1.05 for r, _, _ in ratios.values()), ratios
    assert all(len(c['blocks']) >= 5 for c in lat['a']['calls'].values()), lat['a']['calls']

def test_arms_of_one_seed_share_random_numbers():
    "Common random numbers, which the pairing relies on: at one seed a static and a dynamic arm (different models, different draws for their weights) see the same batches in the same order with the same augmentation"
    from fastai.callback.core import Callback
    from dynblocks.train import RunConfig, train_run
    class Seen(Callback):
        order = 100
        def __init__(self): self.batches = []
        def before_batch(self):
            if self.training: self.batches.append((self.y.tolist(), round(float(self.x.float().sum()), 2)))
    seen = {}
    for n in (1, 2):
        cb = Seen()
        train_run(RunConfig(data='sample', epochs=2, seed=3, arch='dyn_tiny', width=0.25, n_branches=n), cbs=[cb], log=False, bars=False)
        seen[n] = cb.batches
    assert len(seen[1]) >= 8 and seen[1] == seen[2], [a == b for a, b in zip(seen[1], seen[2])]
