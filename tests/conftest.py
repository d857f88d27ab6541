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

# ---------------------------------------------------------------- one tiny trained run for every test that needs a run folder
TINY_RUN = ['--data', 'sample', '--n-train', '600', '--epochs', '3', '--arch', 'dyn_tiny', '--width', '0.25', '--bs', '50', '--seed', '3']

@pytest.fixture(scope='session')
def tiny_run(tmp_path_factory, worker_id):
    "`dynblocks train TINY_RUN --quiet` once per session, as a user runs it (a subprocess); yields (run folder, its CompletedProcess). "
    "Read-only: a test that writes into a run folder copies it first (`run_copy`)"
    import json, subprocess, sys
    from filelock import FileLock
    # one run for all pytest-xdist workers (their session fixtures are their own: each would train it), as pytest-xdist's docs
    # share session data: the workers' common temporary folder, and a file lock while the first one trains
    root = tmp_path_factory.getbasetemp() if worker_id == 'master' else tmp_path_factory.getbasetemp().parent
    out, done = root/'tiny'/'run', root/'tiny'/'result.json'
    with FileLock(str(root/'tiny.lock')):
        if not done.exists():
            r = subprocess.run([str(Path(sys.executable).parent/'dynblocks'), 'train', *TINY_RUN, '--out', str(out), '--quiet'],
                               capture_output=True, text=True, env={**os.environ, 'CI': 'true'}, timeout=600)
            assert r.returncode == 0, r.stderr[-2000:]
            done.write_text(json.dumps(dict(args=r.args, returncode=r.returncode, stdout=r.stdout, stderr=r.stderr)))
    return out, subprocess.CompletedProcess(**json.loads(done.read_text()))

def run_copy(tiny_run, dest):
    "A copy of the session's tiny run folder at `dest`, for a test that writes into it"
    import shutil
    shutil.copytree(tiny_run[0], dest, ignore=shutil.ignore_patterns('.lock*'))
    return dest

@pytest.fixture
def cli(capfd, monkeypatch):
    "`dynblocks ARGS` in this process (a subprocess costs seconds of imports): returns a CompletedProcess with the exit code "
    "and what reached stdout and stderr (file descriptors too, so a C library's messages count)"
    import subprocess
    from dynblocks.cli import main
    def run(*args, cwd=None):
        args = [str(a) for a in args]
        if cwd is not None: monkeypatch.chdir(cwd)
        capfd.readouterr()
        try: main(args); code = 0
        except SystemExit as e: code = e.code if isinstance(e.code, int) else int(e.code is not None)
        out, err = capfd.readouterr()
        return subprocess.CompletedProcess(args, code, out, err)
    return run
