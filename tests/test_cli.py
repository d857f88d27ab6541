"The `dynblocks` command, run as a user runs it: in a subprocess."
import json, os, re, subprocess, sys
from pathlib import Path
import pytest
from PIL import Image

EXE = Path(sys.executable).parent/'dynblocks'

def run(*args, env=None, cwd=None):
    e = {**os.environ, 'CI': 'true', **(env or {})}
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, env=e, cwd=cwd, timeout=600)

def test_models_and_recipes(cli):
    r = cli('models')  # in this process (`python -m dynblocks`, as launchers run it: tests/test_speedrun.py's budget run)
    assert r.returncode == 0 and 'dyn_res4' in r.stdout and 'GFLOPs' in r.stdout
    r = cli('models', '--json')
    assert {o['name'] for o in json.loads(r.stdout)} >= {'dyn_res4', 'dyn_pool4', 'se_resnet'}
    r = cli('recipes')
    assert r.returncode == 0 and 'seed003' in r.stdout

ERRORS = [
    (['train', '--arch', 'dyn_res5'], "Unknown model 'dyn_res5'; valid: dyn_cpu"),  # checked where it is used: the parser loads no registry
    (['train', '--recipe', 'seed9'], "Unknown recipe 'seed9'; valid: default"),
    (['train', '--opt', 'adamw'], "Unknown `opt` 'adamw'; valid: sgd, nesterov, adam. Did you mean 'adam'?"),
    (['train', '--precision', 'fp8'], "Unknown `precision` 'fp8'; valid: fp32, fp16, bf16."),
    (['train', '--epochs', '0'], '`epochs` must be a finite whole number >= 1, got 0.'),
    (['train', '--lr', 'fast'], "'fast' is not a number"),
    (['train', '--data', '/no/such/folder'], 'does not exist'),
    (['train', '--resume'], '--resume needs --out'),
    (['predict', 'missing', 'x.png'], 'No image at x.png'),
    (['tune', '--trials', '-3'], 'must be >= 1'),
    (['train', '--mixup', '0.4', '--cutmix', '1'], 'cannot both be on'),
    (['train', '--width', '1e4'], '`width` must be a finite number in'),
    (['train', '--from-study', 'x', '--storage', 'sqlite:////no/such/dir/s.db'], 'Cannot open the storage sqlite:////no/such/dir/s.db'),
]

@pytest.mark.parametrize('args,msg', [ERRORS[4], ERRORS[0]])  # a parser error and a run-time one, as a user sees them
def test_errors_exit_2(args, msg, tmp_path):
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert msg in r.stderr, r.stderr

@pytest.mark.parametrize('args,msg', ERRORS)
def test_errors_exit_2_in_process(args, msg, tmp_path, monkeypatch, capsys):
    "Every error case through the same `main` (in this process: each subprocess costs seconds of imports)"
    from dynblocks.cli import main
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e: main(args)
    assert e.value.code == 2
    assert msg in capsys.readouterr().err

HELP = "import sys\nfrom dynblocks.cli import main\ntry: main({args!r})\nexcept SystemExit: pass\nprint(sorted(m for m in ('torch', 'fastai') if m in sys.modules))"

@pytest.mark.parametrize('args', [['--help'], ['train', '--help'], ['compare', '--help'], ['train', '--no-such-flag']])
def test_help_imports_no_torch(args):
    "`dynblocks --help`, a command's --help and a mistyped flag answer from the standard library (what they import, not a wall time)"
    r = subprocess.run([sys.executable, '-c', HELP.format(args=args)], capture_output=True, text=True, timeout=120)
    assert r.stdout.splitlines()[-1] == '[]', r.stdout[-500:] + r.stderr[-500:]
    assert ('usage: dynblocks' in r.stdout) or ('unrecognized arguments: --no-such-flag' in r.stderr)

def test_train_sample_then_predict(tiny_run, tmp_path, cli):
    out, r = tiny_run  # `dynblocks train --data sample ... --quiet` (tests/conftest.py), trained once for every test that needs a run
    first = r.stdout.splitlines()[0]
    assert 'sample shipped with dynblocks' in first
    assert 'test accuracy:' in r.stdout
    s = json.loads((out/'summary.json').read_text())
    assert s['epochs'] == 3 and 0 <= s['final_accuracy'] <= 1
    assert (out/'history.csv').exists() and (out/'training.png').exists()
    png = tmp_path/'img.png'
    Image.new('RGB', (32, 32), (200, 30, 30)).save(png)
    r = run('predict', str(out), str(png))  # the run folder: its safe model.json + model.safetensors
    assert r.returncode == 0, r.stderr[-2000:]
    name, cls, prob = r.stdout.strip().split('\t')
    assert name == str(png) and 0 <= float(prob) <= 1
    r2 = cli('predict', out/'model.pkl', png)
    assert r2.returncode == 2 and 'opening it can run code' in r2.stderr and '--unsafe-pickle' in r2.stderr, r2.stderr
    r2 = cli('predict', out/'model.pkl', png, '--unsafe-pickle')  # the user's own file: opt in
    assert r2.returncode == 0 and r2.stdout.split('\t')[1] == cls and abs(float(r2.stdout.split('\t')[2]) - float(prob)) < 2e-3

def test_train_without_dynamic_blocks_and_without_a_terminal(tmp_path):
    "se_resnet trains to the end (no branch-weight plot); off a terminal, one line per epoch and no progress bars"
    out = tmp_path/'se'
    e = {k: v for k, v in os.environ.items() if k != 'CI'}  # not --quiet, not CI: only the missing TTY decides
    r = subprocess.run([str(EXE), 'train', '--data', 'sample', '--n-train', '300', '--epochs', '2', '--arch', 'se_resnet', '--width', '0.25',
                        '--bs', '100', '--out', str(out)], capture_output=True, text=True, env=e, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out/'model.pkl').exists() and not (out/'branch_weights.png').exists()
    assert '\r' not in r.stdout and len(r.stdout.splitlines()) <= 6, r.stdout  # header, banner, 2 epochs, result
    assert r.stdout.splitlines()[1].split()[:2] == ['epoch', 'train_loss']

def _table(out):
    "The header lines and the epoch rows of a run's output"
    lines = [l.strip() for l in out.replace('\r', '\n').splitlines()]
    return [l for l in lines if l.split()[:2] == ['epoch', 'train_loss']], [l for l in lines if re.match(r'\d+\s+\d+\.\d+\s', l)]

def test_train_output_one_table_no_warnings(tmp_path):
    "A recipe with TTA (cpu10: multi-crop): one epoch table with its time column, the TTA in the summary line only, no warnings"
    r = run('train', '--recipe', 'cpu10', '--data', 'sample', '--n-train', '512', '--epochs', '2', '--width', '0.25', '--out', str(tmp_path/'r'))
    assert r.returncode == 0, r.stderr[-2000:]
    heads, rows = _table(r.stdout)
    assert len(heads) == 1 and len(rows) == 2, r.stdout  # the TTA's two prediction passes print no table
    assert all(re.fullmatch(r'\d\d:\d\d', l.split()[-1]) and len(l.split()) == len(heads[0].split()) for l in rows), r.stdout
    assert 'with multi-crop TTA' in r.stdout.splitlines()[-1], r.stdout
    assert 'Warning' not in r.stderr, r.stderr  # e.g. matplotlib's "No artists with labels found to put in legend"

def test_progress_bar_on_a_terminal(tmp_path):
    "On a terminal (a pty), fastai's progress bar and its one table"
    import pty
    main, sub = pty.openpty()
    p = subprocess.Popen([str(EXE), 'train', '--data', 'sample', '--n-train', '300', '--epochs', '1', '--width', '0.25', '--bs', '100',
                          '--out', str(tmp_path/'r')], stdin=sub, stdout=sub, stderr=sub, env={**os.environ, 'CI': 'true'})
    os.close(sub)
    buf = b''
    while True:
        try: chunk = os.read(main, 65536)
        except OSError: break  # EIO: the child closed the terminal
        if not chunk: break
        buf += chunk
    os.close(main)
    assert p.wait(timeout=600) == 0, buf[-2000:]
    out = buf.decode('utf8', 'replace')
    assert 'Epoch 1/1' in out and '100.00% [' in out, out[-2000:]  # fastprogress's bar
    heads, rows = _table(out)
    assert len(heads) == 1 and len(rows) == 1 and re.fullmatch(r'\d\d:\d\d', rows[0].split()[-1]), out[-2000:]
    assert 'Warning' not in out and 'test accuracy:' in out, out[-2000:]

def test_cpu_estimate_is_a_line_not_a_warning():
    "`train_run`'s learner: `dyn_learner`'s `SlowOnCPUWarning` becomes one line of the run's output, other warnings stay warnings"
    import warnings
    from dynblocks.cifar import sample_path
    from dynblocks.data import cifar10_dls
    from dynblocks.learner import SlowOnCPUWarning, dyn_learner
    from dynblocks.train import _estimates_as_lines
    dls, lines = cifar10_dls(sample_path(), bs=64, seed=0, n_train=200, device='cpu'), []
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('error', SlowOnCPUWarning)  # one that escaped would raise here
        warnings.simplefilter('always', UserWarning)
        with _estimates_as_lines(lines.append):
            dyn_learner(dls, 'dyn_tiny', model_kw=dict(width=0.25), cpu_note=0)  # every epoch counts as slow
            warnings.warn('another', UserWarning)
    assert len(lines) == 1 and lines[0].startswith('estimate: ') and 'per epoch of 200 images' in lines[0] \
        and 'cpu_note' not in lines[0], lines
    assert [str(o.message) for o in w if o.category is UserWarning] == ['another'], [str(o.message) for o in w]

def test_fp16_and_bf16_are_one_setting():
    from dynblocks.cli import make_parser
    assert make_parser().parse_args(['train', '--fp16', '--bf16']).precision == 'bf16'  # the last one, not two callbacks
    assert make_parser().parse_args(['train', '--precision', 'fp16']).precision == 'fp16'

def test_train_real_subset(tmp_path, cifar_root):
    r = run('train', '--data', str(cifar_root), '--n-train', '500', '--epochs', '1', '--arch', 'dyn_tiny',
            '--width', '0.25', '--out', str(tmp_path/'r'), '--quiet')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'CIFAR-10 from' in r.stdout.splitlines()[0]

def test_ctrl_c_then_resume_ends_like_an_uninterrupted_run(tmp_path, tiny_run):
    import signal, time, torch
    from fastai.learner import load_learner
    from conftest import TINY_RUN
    args = ['train', *TINY_RUN, '--quiet']
    full = tiny_run[0]  # the same command, uninterrupted (trained once per session)
    out = tmp_path/'cut'
    p = subprocess.Popen([str(EXE), *args, '--out', str(out)], env={**os.environ, 'CI': 'true'},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,  # Ctrl-C acts even where a shell started
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # the tests in the background (SIGINT ignored)
    t0 = time.time()
    while not (out/'checkpoint.pth').exists() and time.time() - t0 < 300: time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=300)
    assert p.returncode != 0 and 'continue with' in err, err[-2000:]
    assert not (out/'model.pkl').exists()
    r = run(*args, '--out', str(out), '--resume')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'resuming from the checkpoint after epoch' in r.stdout
    a, b = load_learner(full/'model.pkl'), load_learner(out/'model.pkl')
    for (k, v), w in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        torch.testing.assert_close(v.float(), w.float(), rtol=1e-5, atol=1e-6, msg=k)
    assert len((out/'history.csv').read_text().splitlines()) == 4  # header + 3 epochs
    for f in ('summary.json', 'training.png', 'branch_weights.png', 'attention.png'): assert (out/f).exists()

def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def test_train_in_two_processes(tmp_path):
    "`accelerate launch` with 2 CPU processes (gloo): the run completes, the ranks agree, only rank 0 writes"
    import torch
    pytest.importorskip('accelerate')
    out, rec = tmp_path/'run', tmp_path/'record'
    rec.mkdir()
    cmd = [sys.executable, '-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1',
           '--mixed_precision', 'no', '--dynamo_backend', 'no', '--main_process_port', str(_free_port()),
           str(Path(__file__).parent/'ddp_worker.py'), 'train', '--data', 'sample', '--epochs', '2', '--width', '0.5',
           '--bs', '100', '--out', str(out), '--quiet']
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, 'CI': 'true', 'DDP_RECORD': str(rec)})
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'in 2 processes' in r.stdout.splitlines()[0] and r.stdout.count('test accuracy:') == 1, r.stdout  # rank 0 speaks
    r0, r1 = (torch.load(rec/f'rank{i}.pt', weights_only=False) for i in (0, 1))
    assert r0['state'].keys() == r1['state'].keys()
    for k, v in r0['state'].items(): assert torch.equal(v, r1['state'][k]), k  # parameters and BatchNorm statistics
    assert r1['written'] == [], r1['written']
    assert {Path(p).name for p in r0['written']} >= {'checkpoint.pth', 'model.pkl', 'history.csv', 'summary.json', 'training.png'}
    s = json.loads((out/'summary.json').read_text())
    assert s['processes'] == 2 and len((out/'history.csv').read_text().splitlines()) == 3
    assert r0['summary']['final_accuracy'] == r1['summary']['final_accuracy']  # gathered predictions: same metric
    from fastai.learner import load_learner
    learn = load_learner(out/'model.pkl')  # a plain model (no DDP wrapper) with rank 0's weights
    for k, v in learn.model.state_dict().items(): assert torch.equal(v.cpu(), r0['state'][k].cpu()), k
