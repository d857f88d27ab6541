"`dynblocks compare`: a comparison killed after its first run and resumed, two workers sharing one, a bad arm refused before anything runs, a cut or superseded record."
import json, os, shutil, signal, subprocess, sys, time
from pathlib import Path
import pytest
ROOT = Path(__file__).resolve().parent.parent

EXE = Path(sys.executable).parent/'dynblocks'
ARMS = [dict(name='tiny', arch='dyn_tiny', model_kw=dict(width=0.25, n_branches=1), what='the static twin'),
        dict(name='tiny_dyn', arch='dyn_tiny', model_kw=dict(width=0.25, n_branches=2, start='twin'), what='two branches, twin start')]
FLAGS = ['--seeds', '0', '1', '--passes', '1', '--data', 'sample', '--n-train', '200', '--lr-factors', '0.5', '2', '--exact', '100', '--extend', '0',
         '--latency-s', '15']

def start(out, *flags):
    return subprocess.Popen([str(EXE), 'compare', '--out', str(out), *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, 'CI': 'true'})

def ids(out): return [json.loads(l)['id'] for l in (out/'results.jsonl').read_text().splitlines() if l.strip()]

def test_killed_then_resumed(tmp_path):
    "Killed after its first run, `dynblocks compare --out DIR` finishes the rest, runs nothing twice, and the summary has it all"
    (tmp_path/'arms.json').write_text(json.dumps(ARMS))
    out = tmp_path/'cmp'
    p = start(out, '--arms', str(tmp_path/'arms.json'), *FLAGS, '--heartbeat', '1', '--grace', '3')
    t0 = time.time()
    while not ((out/'results.jsonl').exists() and ids(out)) and time.time() - t0 < 300: time.sleep(0.2)
    p.send_signal(signal.SIGKILL); p.communicate(timeout=60)
    first = ids(out)
    assert len(first) >= 1 and first[0].startswith('sweep/'), first
    r = subprocess.run([str(EXE), 'compare', '--out', str(out), '--heartbeat', '1', '--grace', '3'], capture_output=True, text=True, timeout=900,
                       env={**os.environ, 'CI': 'true'})  # the killed worker's run is taken again once its heartbeat is 3 s old
    assert r.returncode == 0, r.stderr[-3000:]
    done = ids(out)
    assert len(done) == len(set(done)) == 4 + 4 + 1 and done[:len(first)] == first  # 4 sweeps, 4 finals, 1 latency run: each once
    s = json.loads((out/'summary.json').read_text())
    assert s['complete'] and s['best_dynamic_by_valid'] == 'tiny_dyn'
    v = s['arms']['tiny_dyn']['vs_baseline']
    assert set(v['interval']) == {'exact 100', 'other 100', 'all'} and len(v['per_seed']['all']) == 2
    d, lo, hi = v['interval']['all']
    assert lo <= d <= hi and v['verdict']['all'].endswith(('gain', 'loss', 'difference'))
    for a in ('tiny', 'tiny_dyn'):
        lat = s['arms'][a]['latency']
        assert set(lat['eager']) == set(lat['onnx']) == {'1', '64'} and all(x > 0 for x in lat['eager'].values()), lat
        assert s['arms'][a]['lr'] in [x['lr'] for x in s['arms'][a]['sweep']]  # chosen from its own sweep
        edge = 'largest' if s['arms'][a]['lr'] == max(x['lr'] for x in s['arms'][a]['sweep']) else 'smallest'
        assert s['arms'][a]['lr_edge'] == edge and s['arms'][a]['sweep_capped']  # two factors, no extension: always an edge, at the cap
        assert f"{a}: its sweep chose its {edge} lr factor after 0 extensions (the cap, --extend)" in r.stdout
        assert s['arms'][a]['latency']['side_by_side'] and all(c['n'] >= 3 for c in s['arms'][a]['latency']['calls'].values())
    assert s['arms']['tiny_dyn']['latency']['impl']['1'] in ('fused', 'aggregate')
    assert (out/'pareto.png').stat().st_size > 10_000
    assert 'tiny_dyn vs tiny (all test images): ' in r.stdout and 'runs done' in r.stdout, r.stdout
    # a study moved to another machine without its seed-0 run folders: the latency is timed on another seed's model,
    # by a worker that takes only latency runs (a final run left to do stays undone)
    shutil.rmtree(out/'runs'/'final-tiny-s0')
    for f in out.glob('jobs.db*'): f.unlink()  # moved without its storage: results.jsonl is its record
    rows = [l for l in (out/'results.jsonl').read_text().splitlines() if json.loads(l)['id'] not in ('latency', 'final/tiny_dyn/s1')]
    (out/'results.jsonl').write_text('\n'.join(rows) + '\n')
    r = subprocess.run([str(EXE), 'compare', '--out', str(out), '--only', 'latency'], capture_output=True, text=True, timeout=300,
                       env={**os.environ, 'CI': 'true'})
    assert r.returncode == 0, r.stderr[-3000:]
    done = [json.loads(l) for l in (out/'results.jsonl').read_text().splitlines()]
    lat = [d for d in done if d['id'] == 'latency']
    assert len(lat) == 1 and lat[0]['seeds'] == {'tiny': 1, 'tiny_dyn': 0} and lat[0]['arms']['tiny']['eager']['1'] > 0, lat
    assert 'final/tiny_dyn/s1' not in {d['id'] for d in done} and '8 of 9 runs done' in r.stdout, r.stdout[-500:]

def test_two_workers_share_one_comparison(tmp_path):
    "Two `dynblocks compare` processes on one folder divide its runs: every run once, both worked"
    (tmp_path/'arms.json').write_text(json.dumps(ARMS))
    out = tmp_path/'cmp'
    first = subprocess.run([str(EXE), 'compare', '--out', str(out), '--arms', str(tmp_path/'arms.json'), *FLAGS, '--no-latency', '--summary'],
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 2 and 'describe a new comparison' not in first.stderr  # --summary of nothing yet: no comparison there
    ps = [start(out, '--arms', str(tmp_path/'arms.json'), *FLAGS, '--no-latency'), None]
    t0 = time.time()
    while not (out/'compare.json').exists() and time.time() - t0 < 120: time.sleep(0.2)  # the first checks its arms, writes compare.json; the second joins it
    ps[1] = start(out)
    outs = [p.communicate(timeout=900) for p in ps]
    assert all(p.returncode == 0 for p in ps), [o[1][-2000:] for o in outs]
    rows = [json.loads(l) for l in (out/'results.jsonl').read_text().splitlines()]
    assert len(rows) == len({r['id'] for r in rows}) == 8  # 4 sweeps (--extend 0), 4 finals
    assert len({r['worker'] for r in rows}) == 2, [r['worker'] for r in rows]

def test_interval_is_paired_over_images():
    "Two runs that differ on 50 of 5,000 images: the paired interval is that narrow; resampling the arms' images apart would be ~5× wider"
    import numpy as np
    from dynblocks.measure import paired_interval, verdict, signed
    rng = np.random.default_rng(0)
    A = rng.random((1, 5000)) < 0.8
    B = A.copy(); B[0, :50] = ~B[0, :50]
    d, lo, hi = paired_interval(A, B)
    assert abs(d - 100*(A.mean() - B.mean())) < 1e-4 and lo < d < hi and hi - lo < 0.8, (d, lo, hi)
    assert paired_interval(A, A) == (0., 0., 0.)
    assert verdict(d, lo, hi).startswith(signed(d) + " points, 95 % interval ")

def test_only_takes_the_kinds_of_run_a_comparison_has():
    "`dynblocks compare --only` offers exactly the kinds of run `dynblocks.compare` knows, and a worker refuses any other"
    from dynblocks.cli import make_parser
    from dynblocks.arms import _KINDS, CompareConfig, Arm
    from dynblocks.compare import run_worker
    from dynblocks.core import DynblocksError
    co = make_parser()._subparsers._group_actions[0].choices['compare']
    assert tuple(next(a for a in co._actions if a.dest == 'only').choices) == _KINDS
    with pytest.raises(DynblocksError, match='choose among sweep, final, latency'):
        run_worker(CompareConfig([Arm('tiny', 'dyn_tiny'), Arm('tiny_dyn', 'dyn_tiny')]), '/nonexistent', kinds=('finals',))


def test_bad_arm_refused_before_anything_runs(tmp_path, cli):
    "An arms file whose second arm has a typo is refused in one line, exit 2, nothing trained and no folder written"
    (tmp_path/'arms.json').write_text(json.dumps([ARMS[0], dict(ARMS[1], model_kw=dict(width=0.25, gate='sigmod'))]))
    r = cli('compare', '--arms', tmp_path/'arms.json', *FLAGS, '--out', tmp_path/'cmp')
    assert r.returncode == 2 and r.stderr.strip().count('\n') == 0 and "Arm 'tiny_dyn': unknown gate 'sigmod'" in r.stderr, r.stderr
    assert not (tmp_path/'cmp').exists()
    r = cli('compare', '--arch', 'dyn_cpu', '--dynamize', '{"n_branches": 4}', *FLAGS, '--out', tmp_path/'cmp')
    assert r.returncode == 2 and 'has dynamic blocks of its own' in r.stderr and not (tmp_path/'cmp').exists(), r.stderr

def test_arch_of_a_dynblocks_net(tmp_path):
    "`--arch dyn_tiny` (a net with dynamic blocks) runs against its one-branch static twin and ends with a verdict line"
    r = subprocess.run([str(EXE), 'compare', '--arch', 'dyn_tiny', '--data', 'sample', '--n-train', '200', '--passes', '1', '--seeds', '0', '1',
                        '--lr-factors', '1', '--no-latency', '--out', str(tmp_path/'cmp')], capture_output=True, text=True, timeout=600,
                       env={**os.environ, 'CI': 'true'})
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'dyn_tiny vs dyn_tiny_static (all test images): ' in r.stdout and '6 of 6 runs done' in r.stdout, r.stdout[-1500:]

def _study(tmp_path):
    "A copy of the committed speedrun-budget study"
    d = tmp_path/'speedrun'
    shutil.copytree(ROOT/'bench'/'results'/'pays'/'speedrun', d)
    return d

def test_cut_last_line_keeps_the_summary(tmp_path, cli):
    "A results.jsonl whose last line a kill cut: `--summary` still works, says so in one line, and no figure moves"
    from dynblocks.compare import summarize
    d = _study(tmp_path)
    before = summarize(d)
    with open(d/'results.jsonl', 'a') as f: f.write((d/'results.jsonl').read_text().splitlines()[-1][:120])
    r = cli('compare', '--summary', '--out', d)
    assert r.returncode == 0 and 'not a whole record: skipped' in r.stdout, r.stderr[-2000:]
    after = json.loads((d/'summary.json').read_text())
    assert after['arms'] == json.loads(json.dumps(before['arms'])) and after['damaged_lines'] == [len((d/'results.jsonl').read_text().splitlines())]

def test_superseded_record_moves_no_figure(tmp_path):
    "A superseded record (an earlier attempt of a final run, loaded and with other answers) added to the committed study: no figure of the summary or the pages moves"
    sys.path.insert(0, str(ROOT/'bench'))
    from pays_text import headline, rows, equal_time
    from dynblocks.compare import summarize
    from dynblocks.measure import pack, unpack
    d = _study(tmp_path)
    before = summarize(d)
    lines = (d/'results.jsonl').read_text().splitlines()
    i = next(k for k, l in enumerate(lines) if json.loads(l)['id'] == 'final/twin_time/s1')
    r = json.loads(lines[i])
    c = ~unpack(r['correct'], r['n_test'])
    lines.insert(i, json.dumps(dict(r, correct=pack(c), test_acc=float(c.mean()), loaded=True, train_s=1.0, attempt=1)))
    (d/'results.jsonl').write_text('\n'.join(lines) + '\n')
    after = summarize(d)
    assert after == before
    assert headline(after) == headline(before) and rows(after) == rows(before) and equal_time(after, 'best') == equal_time(before, 'best')

def test_postgresql_two_workers_one_killed(tmp_path):
    "Two workers on one comparison in a real PostgreSQL server, one killed (SIGKILL) mid-run: the other finishes it, every run done exactly once, the killed run resumed from its checkpoint"
    pytest.importorskip('psycopg2')
    optuna = pytest.importorskip('optuna')
    from test_tune import postgres_server
    (tmp_path/'arms.json').write_text(json.dumps(ARMS))
    out = tmp_path/'cmp'
    with postgres_server() as (port, as_postgres):
        as_postgres(['psql', '-U', 'postgres', '-c', "CREATE USER cmp PASSWORD 'secret'"])
        as_postgres(['createdb', '-U', 'postgres', '-O', 'cmp', 'cmp'])
        url = f'postgresql+psycopg2://cmp:secret@127.0.0.1:{port}/cmp'  # psycopg2: the driver the tune extra installs
        flags = ['--arms', str(tmp_path/'arms.json'), *FLAGS[:FLAGS.index('--passes')], '--passes', '4', *FLAGS[FLAGS.index('--passes') + 2:],
                 '--no-latency', '--storage', url, '--heartbeat', '1', '--grace', '4']
        ps = [start(out, *flags)]
        time.sleep(2)
        ps.append(start(out, *flags))
        def mid_run(r):  # a run past its first epoch: a checkpoint and no summary yet
            return (r/'checkpoint.pth').exists() and not (r/'summary.json').exists()
        def held():  # {worker pid: [run folders of the trials it holds]}
            out_ = {}
            for k in ('sweep', 'final'):
                try: ts = optuna.load_study(study_name=f'cmp/{k}', storage=url).get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
                except KeyError: continue  # the study is not made yet
                for t in ts:
                    if 'worker' in t.user_attrs: out_.setdefault(int(t.user_attrs['worker'].rsplit(':', 1)[1]), []).append(out/'runs'/t.user_attrs['job'].replace('/', '-'))
            return out_
        t0, both = time.time(), False
        while time.time() - t0 < 300 and ps[0].poll() is None:  # kill the first worker while it holds a run past its first epoch, once the second has taken one
            h = held(); both |= ps[1].pid in h
            if both and any(mid_run(r) for r in h.get(ps[0].pid, [])): break
            time.sleep(0.1)
        assert ps[0].poll() is None, ps[0].communicate(timeout=5)[1][-2000:] or 'the first worker ended before it could be killed mid-run'
        ps[0].send_signal(signal.SIGKILL); ps[0].communicate(timeout=60)
        o, e = ps[1].communicate(timeout=900)
        assert ps[1].returncode == 0, e[-3000:]
        assert 'secret' not in o + e
        S = optuna.trial.TrialState
        trials = [t for k in ('sweep', 'final', 'latency') for t in optuna.load_study(study_name=f'cmp/{k}', storage=url).get_trials()]
        done = [t.user_attrs['job'] for t in trials if t.state == S.COMPLETE]
        assert len(done) == len(set(done)) == 8, sorted(done)  # 4 sweeps, 4 finals: each exactly once
        assert sum(t.state == S.FAIL and 'job' in t.user_attrs for t in trials) >= 1  # the killed worker's run, failed by its silence
        assert not [t for t in trials if t.state in (S.RUNNING, S.WAITING)]
        resumed = [t.user_attrs['result'] for t in trials if t.state == S.COMPLETE and t.user_attrs['result'].get('resumed_from')]
        assert resumed, 'the killed run started again from scratch'
        s = json.loads((out/'summary.json').read_text())
        assert s['complete'] and s['runs'] == 8
