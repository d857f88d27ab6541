"Faults of the machine (issue 44): a full disk, a folder that cannot be written. One line each, nothing left behind, `--resume` goes on."
import errno, json, os, shutil, subprocess, sys
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file

RUN = ['--data', 'sample', '--n-train', '300', '--n-valid', '100', '--epochs', '3', '--arch', 'dyn_tiny', '--width', '0.25',
       '--bs', '50', '--seed', '1', '--quiet']

@pytest.fixture(scope='module')
def unbroken(tmp_path_factory):
    "The run trained without a fault, once for this module: what a broken-then-resumed run must end with"
    from dynblocks.cli import main
    out = tmp_path_factory.mktemp('unbroken')/'run'
    main(['train', *RUN, '--out', str(out)])
    return out

def same_run(a:Path, b:Path):
    "The two run folders hold the same model and the same history"
    wa, wb = load_file(str(a/'model.safetensors')), load_file(str(b/'model.safetensors'))
    assert wa.keys() == wb.keys()
    for k in wa: torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6, msg=k)
    # the history too, but for `train_loss`: fastai's smoothed loss (a running average over batches) starts again in a resumed fit
    rows = lambda f: [l.split(',')[:1] + l.split(',')[2:] for l in (f/'history.csv').read_text().splitlines()]
    assert rows(a) == rows(b)

def leftovers(out:Path): return sorted(p.name for p in out.iterdir() if p.name.startswith('.tmp'))

def one_error_line(err:str) -> str:
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith('dynblocks train: error: '), err[-2000:]
    return lines[0]

def test_nth_write_fails_then_resume_ends_like_an_unbroken_run(unbroken, tmp_path, cli, monkeypatch):
    "`OSError(ENOSPC)` injected into the second checkpoint write (the disk filled by something else): one line, exit 2, no temporary file, the first checkpoint kept; `--resume` then ends as the unbroken run"
    real, calls = torch.save, []
    def save(obj, f, *a, **kw):
        calls.append(getattr(f, 'name', f))
        if len(calls) == 2:
            f.write(b'half a checkpoint')  # the disk fills up half-way through the write
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(obj, f, *a, **kw)
    monkeypatch.setattr(torch, 'save', save)
    out = tmp_path/'run'
    r = cli('train', *RUN, '--out', out)
    monkeypatch.setattr(torch, 'save', real)
    assert r.returncode == 2
    line = one_error_line(r.stderr)
    assert line == (f"dynblocks train: error: Cannot write {out/'checkpoint.pth'}: No space left on device; the last finished epoch is "
                    f"checkpointed in {out/'checkpoint.pth'}: once there is room, continue with `dynblocks train --resume --out {out}`."), line
    assert leftovers(out) == [] and not (out/'model.json').exists()
    assert torch.load(out/'checkpoint.pth', weights_only=True)['epoch'] == 0  # the first epoch's checkpoint, whole
    r = cli('train', '--resume', '--out', out)
    assert r.returncode == 0 and 'resuming from the checkpoint after epoch 1' in r.stdout, r.stderr[-2000:]
    same_run(unbroken, out)

def test_model_file_write_fails_in_python(tmp_path, monkeypatch):
    "From Python: a failed write of the model files is a `WriteError` naming the file; the checkpoint of the last epoch stays"
    from dynblocks.core import WriteError
    from dynblocks.train import RunConfig, train_run
    import safetensors.torch
    def full(sd): raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))  # a quota, this time
    monkeypatch.setattr(safetensors.torch, 'save', full)
    out = tmp_path/'run'
    with pytest.raises(WriteError) as e:
        train_run(RunConfig(data='sample', n_train=100, n_valid=50, epochs=1, width=0.25, bs=50, out=str(out)), log=False)
    assert str(e.value).startswith(f"Cannot write {out/'model.safetensors'}: Disk quota exceeded; the last finished epoch is checkpointed")
    assert '\n' not in str(e.value) and leftovers(out) == [] and (out/'checkpoint.pth').exists()

# ---------------------------------------------------------------- a real small file system (root can mount a tmpfs)
@pytest.fixture
def tmpfs(tmp_path):
    "A mount point with a tmpfs of the size asked for, unmounted after the test; skips where the test cannot mount"
    mounted = []
    def make(size_mb:int) -> Path:
        p = tmp_path/f'fs{len(mounted)}'; p.mkdir()
        r = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size_mb}m', 'tmpfs', str(p)], capture_output=True, text=True)
        if r.returncode: pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()[:100]}): the fault-injection tests cover the same code")
        mounted.append(p); return p
    yield make
    for p in mounted: subprocess.run(['umount', '-l', str(p)], capture_output=True)

def test_small_folder_is_refused_before_training(tmpfs, cli):
    "On a 3 MB file system the run is refused in one line, naming the folder, the space needed and free, before any data is read"
    out = tmpfs(3)/'run'
    r = cli('train', '--data', 'sample', '--epochs', '2', '--out', out)
    assert r.returncode == 2 and r.stdout == '', r.stdout
    line = one_error_line(r.stderr)
    assert line.startswith(f"dynblocks train: error: {out} has 3.0 MB free; the run needs about ") and 'MB: free some space' in line, line
    assert sorted(p.name for p in out.iterdir()) == []  # nothing written but the folder

def test_disk_filled_during_the_run_then_resumed(unbroken, tmpfs, tmp_path):
    "A real full disk mid-run (another file takes the space after the first epoch): one line, no temporary file; freed, `--resume` ends as the unbroken run"
    from dynblocks.core import WriteError
    from dynblocks.train import RunConfig, train_run
    from dynblocks.cli import config_from_args, make_parser
    from fastai.callback.core import Callback
    fs = tmpfs(40)
    out, filler = fs/'run', fs/'other-program.dat'
    class FillDisk(Callback):
        order = 95  # after `Checkpoint` (90) saved the first epoch
        def after_epoch(self):
            if self.epoch == 0:
                with open(filler, 'wb') as f:
                    try:
                        while True: f.write(b'\0'*(1 << 20))
                    except OSError: pass
    cfg = config_from_args(make_parser().parse_args(['train', *RUN, '--out', str(out)]))
    with pytest.raises(WriteError) as e: train_run(cfg, cbs=[FillDisk()], log=False)
    assert str(e.value).startswith(f"Cannot write {out/'checkpoint.pth'}: No space left on device; the last finished epoch"), str(e.value)
    assert leftovers(out) == [] and torch.load(out/'checkpoint.pth', weights_only=True)['epoch'] == 0
    filler.unlink()
    r = subprocess.run([sys.executable, '-m', 'dynblocks', 'train', '--resume', '--out', str(out)], capture_output=True, text=True,
                       timeout=600, env={**os.environ, 'CI': 'true'})
    assert r.returncode == 0, r.stderr[-2000:]
    same_run(unbroken, out)

def test_run_bytes_covers_what_a_run_writes(unbroken):
    "The room asked for before a run covers its folder at the end plus one more checkpoint (the one being written)"
    from dynblocks.train import run_bytes
    from dynblocks.cli import config_from_args, make_parser
    cfg = config_from_args(make_parser().parse_args(['train', *RUN]))
    files = sum(p.stat().st_size for p in unbroken.iterdir() if p.is_file())
    assert files + (unbroken/'checkpoint.pth').stat().st_size <= run_bytes(cfg) <= 4*files + (8 << 20), (files, run_bytes(cfg))
