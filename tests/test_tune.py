"Optuna search: resume, two workers on one SQLite study, a killed worker's trial, the CLI, and the missing extra."
import os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from dynblocks.core import DynblocksError

optuna = pytest.importorskip('optuna')
EXE = Path(sys.executable).parent/'dynblocks'

def tune_cmd(db, study, trials, extra=()):
    return [str(EXE), 'tune', '--trials', str(trials), '--storage', f'sqlite:///{db}', '--study', study, '--epochs', '1',
            '--n-train', '200', '--n-valid', '100', *extra]

def env(cifar_root): return {**os.environ, 'DYNBLOCKS_DATA': str(cifar_root), 'CI': 'true'}

def test_two_workers_share_one_study(tmp_path, cifar_root):
    db = tmp_path/'s.db'
    ps = [subprocess.Popen(tune_cmd(db, 'shared', 6, ['--seed', str(i), '--out', str(tmp_path/f'w{i}')]), env=env(cifar_root),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=600) for p in ps]
    assert all(p.returncode == 0 for p in ps), [o[1][-1500:] for o in outs]
    st = optuna.load_study(study_name='shared', storage=f'sqlite:///{db}')
    trials = st.get_trials()
    done = [t for t in trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    assert 6 <= len(done) <= 7  # each worker stops once the study has 6; one may have started the 7th
    assert len({t.number for t in trials}) == len(trials) and len({t._trial_id for t in trials}) == len(trials)
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    assert all('best valid_loss' in o[0] for o in outs)
    assert (tmp_path/'w0'/'optimization_history.png').stat().st_size > 0

def test_killed_worker_trial_is_failed_and_study_resumes(tmp_path, cifar_root):
    db = tmp_path/'k.db'
    url = f'sqlite:///{db}'
    p = subprocess.Popen(tune_cmd(db, 'k', 3, ['--heartbeat', '1', '--grace', '2']) + ['--epochs', '50'], env=env(cifar_root),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < 120:  # wait until its first trial runs
        time.sleep(1)
        try: st = optuna.load_study(study_name='k', storage=url)
        except KeyError: continue
        if any(t.state == optuna.trial.TrialState.RUNNING for t in st.get_trials()): break
    os.kill(p.pid, signal.SIGKILL); p.wait()
    time.sleep(3)  # past the grace period
    r = subprocess.run(tune_cmd(db, 'k', 2, ['--heartbeat', '1', '--grace', '2', '--out', str(tmp_path/'o')]), env=env(cifar_root),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    states = [t.state for t in optuna.load_study(study_name='k', storage=url).get_trials()]
    assert states[0] == optuna.trial.TrialState.FAIL  # the killed worker's trial
    assert optuna.trial.TrialState.RUNNING not in states
    assert sum(s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for s in states) == 2
    # retrain the best trial
    r = subprocess.run([str(EXE), 'train', '--from-study', 'k', '--storage', url, '--epochs', '1', '--n-train', '200',
                        '--quiet'], env=env(cifar_root), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'best trial of study' in r.stdout and 'test accuracy' in r.stdout

def test_without_optuna_names_the_extra(monkeypatch):
    import dynblocks.tune as t
    monkeypatch.setitem(sys.modules, 'optuna', None)
    with pytest.raises(DynblocksError, match=r"pip install 'dynblocks\[tune\]'"): t.dyn_tune(n_trials=1)
