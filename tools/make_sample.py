"""Write the embedded CIFAR-10 sample (`dynblocks/sample/`) from the official pickles.

Usage: python tools/make_sample.py ../shared/data/cifar-10-batches-py

Exact pixels: 100 training images per class (the first of each class in `data_batch_1`) and 20 test images per
class (the first of each class in `test_batch[:1000]`, the exact part of the shared copy), as lossless PNGs in
fastai's `train/<class>/` and `test/<class>/` layout, so the sample loads through the same code as full data.
"""
import sys, shutil
from pathlib import Path
from dynblocks.cifar import _load_pickles, stratified_idxs, save_cifar10

src = Path(sys.argv[1])
d = _load_pickles(src)
(xtr, ytr), (xte, yte) = d['train'], d['test']
itr = stratified_idxs(ytr[:10000], 1000)  # first 100 per class
ite = stratified_idxs(yte[:1000], 200)  # first 20 per class, exact test images
dest = Path(__file__).parent.parent/'dynblocks'/'sample'
shutil.rmtree(dest, ignore_errors=True)
save_cifar10(dest, dict(train=(xtr[itr], ytr[itr]), test=(xte[ite], yte[ite]), classes=d['classes']), 'folders')
print(dest, sum(f.stat().st_size for f in dest.rglob('*.png'))/1e6, 'MB')
