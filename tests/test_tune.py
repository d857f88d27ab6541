"Optuna search: resume, two workers on one SQLite study and on a real PostgreSQL server, a killed worker's trial, the CLI, and the missing extra."
import json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time
from contextlib import contextmanager
from pathlib import Path
import pytest
from dynblocks.core import DynblocksError

optuna = pytest.importorskip('optuna')
EXE = Path(sys.executable).parent/'dynblocks'

def tune_cmd(db, study, trials, extra=()):
    "A `dynblocks tune` worker on the shipped sample (the study's bookkeeping is under test, not the data: no CIFAR-10 to load per worker)"
    return [str(EXE), 'tune', '--trials', str(trials), '--storage', f'sqlite:///{db}', '--study', study, '--epochs', '1',
            '--data', 'sample', '--n-train', '200', '--n-valid', '100', *extra]

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

def _heartbeats(db):
    "How many trials of the SQLite study `db` have sent a heartbeat (Optuna's own table)"
    import sqlite3
    with sqlite3.connect(db) as c:
        try: return c.execute('select count(*) from trial_heartbeats').fetchone()[0]
        except sqlite3.OperationalError: return 0  # table not created yet

def test_killed_worker_trial_is_failed_and_study_resumes(tmp_path, cifar_root, cli, monkeypatch):
    db = tmp_path/'k.db'
    url = f'sqlite:///{db}'
    p = subprocess.Popen(tune_cmd(db, 'k', 3, ['--heartbeat', '1', '--grace', '2']) + ['--epochs', '50'], env=env(cifar_root),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < 120:  # wait until its first trial runs and has sent a heartbeat (Optuna can only fail a stale
        time.sleep(1)               # trial it has a heartbeat for: killed before the first one, the trial stays RUNNING)
        try: st = optuna.load_study(study_name='k', storage=url)
        except KeyError: continue
        if any(t.state == optuna.trial.TrialState.RUNNING for t in st.get_trials()) and _heartbeats(db): break
    os.kill(p.pid, signal.SIGKILL); p.wait()
    time.sleep(3)  # past the grace period
    r = subprocess.run(tune_cmd(db, 'k', 2, ['--heartbeat', '1', '--grace', '2', '--out', str(tmp_path/'o')]), env=env(cifar_root),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    states = [t.state for t in optuna.load_study(study_name='k', storage=url).get_trials()]
    assert states[0] == optuna.trial.TrialState.FAIL  # the killed worker's trial
    assert optuna.trial.TrialState.RUNNING not in states
    assert sum(s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for s in states) == 2
    # retrain the best trial (in this process, through the same `main`: one subprocess less, seconds of imports)
    monkeypatch.setenv('CI', 'true')
    r = cli('train', '--from-study', 'k', '--storage', url, '--epochs', '1', '--data', 'sample', '--n-train', '200', '--quiet')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'best trial of study' in r.stdout and 'test accuracy' in r.stdout

def test_without_optuna_names_the_extra(monkeypatch):
    import dynblocks.tune as t
    monkeypatch.setitem(sys.modules, 'optuna', None)
    with pytest.raises(DynblocksError, match=r"pip install 'dynblocks\[tune\]'"): t.dyn_tune(n_trials=1)

# ---------------------------------------------------------------- PostgreSQL: the docs' multi-machine recipe, run for real
ROOT = Path(__file__).resolve().parent.parent

def _doc_recipe() -> list:
    "The command lines of the shell block in the PostgreSQL section of nbs/13_tune.ipynb (the docs' recipe)"
    cells = json.loads((ROOT/'nbs'/'13_tune.ipynb').read_text())['cells']
    md = next(''.join(c['source']) for c in cells if c['cell_type'] == 'markdown' and 'one study on PostgreSQL' in ''.join(c['source']))
    block = re.search(r'```sh\n(.*?)```', md, re.S).group(1)
    return [l for l in block.splitlines() if l and not l.startswith('#')]

def _pg_bin() -> Path:
    "bin/ of Debian's PostgreSQL server, installed with apt-get when missing (as .ci/run does for chromium)"
    find = lambda: sorted(Path('/usr/lib/postgresql').glob('*/bin/initdb'))
    if not find() and shutil.which('apt-get'):
        sudo, e = ([] if os.geteuid() == 0 else ['sudo', '-n']), {**os.environ, 'DEBIAN_FRONTEND': 'noninteractive'}
        install = sudo + ['apt-get', 'install', '-y', '-q', 'postgresql']
        if subprocess.run(install, capture_output=True, env=e).returncode:  # an old package list: update it, once
            subprocess.run(sudo + ['apt-get', 'update', '-q'], capture_output=True, env=e)
            subprocess.run(install, capture_output=True, env=e)
    if not find():
        msg = "Debian's postgresql is needed (apt-get install postgresql) and could not be installed"
        if os.environ.get('CI', '').lower() in ('1', 'true', 'yes'): pytest.fail(msg)
        pytest.skip(msg)
    return find()[-1].parent

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@contextmanager
def postgres_server():
    "A throwaway PostgreSQL cluster on 127.0.0.1 (a free port; data and socket in a temporary folder), stopped at the end; "
    "yields (port, run) where `run(cmd)` runs a command line as the server's user against it"
    bin_, root, port = _pg_bin(), Path(tempfile.mkdtemp(prefix='dynblocks-pg-')), _free_port()
    as_user = []
    if os.geteuid() == 0:  # the server refuses to run as root: the `postgres` user the package made runs it
        import pwd
        pw = pwd.getpwnam('postgres'); os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = ['runuser', '-u', 'postgres', '--']
    def run(cmd, **kw):
        r = subprocess.run(as_user + cmd, capture_output=True, text=True, timeout=120, cwd=root, **kw)
        assert r.returncode == 0, (cmd, r.stdout[-1000:], r.stderr[-1000:])
        return r
    data, pid = root/'data', None
    try:
        run([str(bin_/'initdb'), '-D', str(data), '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8'])
        run([str(bin_/'pg_ctl'), '-D', str(data), '-l', str(root/'server.log'), '-w', '-t', '60', 'start', '-o',
             f'-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off'])
        pid = int((data/'postmaster.pid').read_text().split()[0])
        yield port, lambda line: run([str(bin_/a) if a in ('psql', 'createdb') else a for a in line] + ['-h', str(root), '-p', str(port)])
    finally:
        if pid is not None:
            subprocess.run(as_user + [str(bin_/'pg_ctl'), '-D', str(data), '-m', 'fast', '-w', '-t', '60', 'stop'],
                           capture_output=True, cwd=root, timeout=120)
        shutil.rmtree(root, ignore_errors=True)
        if pid is not None:  # no server left behind (its last process may take a moment to go)
            t = time.time()
            while _alive(pid) and time.time() - t < 30: time.sleep(0.2)
            if _alive(pid): pytest.fail(f'the PostgreSQL server (pid {pid}) is still running')

def _alive(pid:int) -> bool:
    "Whether process `pid` runs (a zombie, ended but not yet reaped, does not)"
    try: return Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError: return False

def test_two_workers_on_postgresql(tmp_path, cli, monkeypatch):
    "The docs' recipe on a real server: a user and a database, two `dynblocks tune` workers on one study, then train --from-study"
    import shlex
    pytest.importorskip('psycopg2')
    setup, tune, train = _doc_recipe()[1:3], _doc_recipe()[4], _doc_recipe()[5]
    assert [l.split()[:3] for l in setup] == [['sudo', '-u', 'postgres']]*2 and tune.startswith('dynblocks tune ') and '--from-study' in train
    small = ['--data', 'sample', '--n-train', '200', '--n-valid', '100', '--epochs', '1']
    with postgres_server() as (port, as_postgres):
        for line in setup: as_postgres(['psql' if w == 'psql' else w for w in shlex.split(line)[3:]])  # `sudo -u postgres` → runuser
        def cmd(line, *extra):
            line = line.replace('dbhost:5432', f'127.0.0.1:{port}').replace('--trials 40', '--trials 6')
            return [str(EXE), *shlex.split(line)[1:], *small, *extra]
        url = re.search(r'--storage (\S+)', tune).group(1).replace('dbhost:5432', f'127.0.0.1:{port}')
        t0 = time.time()
        ps = [subprocess.Popen(cmd(tune, '--out', str(tmp_path/f'w{i}')), env={**os.environ, 'CI': 'true'}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for i in range(2)]
        outs = [p.communicate(timeout=600) for p in ps]
        assert all(p.returncode == 0 for p in ps), [o[1][-4000:] for o in outs if "Traceback" in o[1]]
        assert all('best valid_loss' in o[0] and 'secret' not in o[0] + o[1] for o in outs), outs  # the password masked
        assert not [o[1] for o in outs if 'Warning' in o[1]], [o[1][-2000:] for o in outs]  # e.g. Optuna's ExperimentalWarning
        st = optuna.load_study(study_name='cifar', storage=url)
        trials = st.get_trials(deepcopy=False)
        S = optuna.trial.TrialState
        n = {s: sum(t.state == s for t in trials) for s in S}
        assert n[S.COMPLETE] + n[S.PRUNED] + n[S.FAIL] == len(trials) and n[S.FAIL] == 0, n  # every trial accounted for
        assert 6 <= n[S.COMPLETE] + n[S.PRUNED] <= 7, n  # 6 asked; a trial started just before the 6th finished may make 7
        params = [tuple(sorted(t.params.items())) for t in trials]
        assert len(set(params)) == len(params), params  # no parameter set proposed twice
        assert len({t.user_attrs['worker'] for t in trials}) == 2  # both workers ran trials
        monkeypatch.setenv('CI', 'true')
        r = cli(*cmd(train, '--out', str(tmp_path/'best'))[1:])  # in this process, through the same `main`: one subprocess less
        assert r.returncode == 0 and 'best trial of study' in r.stdout and 'test accuracy' in r.stdout, r.stderr[-2000:]
        print(f"two workers, {len(trials)} trials: {time.time() - t0:.0f} s")
