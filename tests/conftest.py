import os
from pathlib import Path
import pytest

def data_root():
    "Root of the real CIFAR-10 copy from $DYNBLOCKS_DATA; missing data fails in CI and skips elsewhere"
    p = os.environ.get('DYNBLOCKS_DATA')
    if p and Path(p).exists(): return Path(p)
    msg = f"real CIFAR-10 needed: set DYNBLOCKS_DATA (now {p!r}) to a folder holding cifar-10-batches-py/"
    if os.environ.get('CI', '').lower() in ('1', 'true', 'yes'): pytest.fail(msg)
    pytest.skip(msg)

@pytest.fixture(scope='session')
def cifar_root(): return data_root()

@pytest.fixture(scope='session')
def cifar(cifar_root):
    "The real CIFAR-10 arrays, loaded once"
    from dynblocks.cifar import load_cifar10
    return load_cifar10(cifar_root, download=False)
