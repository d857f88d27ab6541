"The benchmark scripts run end to end (smoke tests on tiny settings: benchmarks print figures, tests check they work)."
import json, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

def run(*args):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)

def main_of(script, *args):
    "`python bench/SCRIPT ARGS` as `main(ARGS)` in this process, as a CompletedProcess (exit code, what it printed)"
    # these scripts only orchestrate (every timed training they start is its own process): a subprocess for the script itself
    # would cost seconds of imports per test (CI time), and an uncaught exception shows its traceback here
    import contextlib, importlib, io
    if str(ROOT/'bench') not in sys.path: sys.path.insert(0, str(ROOT/'bench'))
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try: importlib.import_module(Path(script).stem).main(list(args))
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
            if isinstance(e.code, str): print(e.code, file=sys.stderr)  # `sys.exit(message)`: the interpreter would print it
    return subprocess.CompletedProcess([script, *args], code, out.getvalue(), err.getvalue())

def test_block_and_data_benchmarks(tmp_path, cifar_root):
    r = main_of('bench/bench.py', 'block', '--presets', 'dyn_tiny', '--bs', '8', '--warmup', '0', '--repeats', '1',
            '--out', str(tmp_path/'b.json'))
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads((tmp_path/'b.json').read_text())
    assert {o['impl'] for o in d['results']} == {'reference', 'fused', 'aggregate'} and d['machine']['torch']  # dyn_tiny's branches are linear
    r = main_of('bench/bench.py', 'data', '--data', str(cifar_root), '--n', '500', '--bs', '100', '--repeats', '1',
            '--out', str(tmp_path/'d.json'))
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path/'d.json').read_text())['results'][0]['speedup'] > 0

@pytest.mark.serial  # its phases are time-boxed (compile budget, step 2 under 150 s): alone, not beside other tests
def test_gpu_day_rehearsal_on_cpu(tmp_path, cifar_root):
    "The GPU day (bench/gpu.py, issue 23) rehearsed on a CPU: both steps, every phase's JSON with the keys the pages read"
    import os
    shared = cifar_root.parent  # ../shared: data/ (DYNBLOCKS_DATA) beside gpu/ (the shard tool and the wheels)
    if not (shared/'gpu'/'cifar_shards.py').exists():
        msg = f"{shared/'gpu'} (cifar_shards.py and the wheels) is needed for the GPU-day rehearsal"
        if os.environ.get('CI', '').lower() in ('1', 'true', 'yes'): pytest.fail(msg)
        pytest.skip(msg)
    r = run('bench/gpu.py', 'day', '--device', 'cpu', '--smoke', '--shared', str(shared), '--out', str(tmp_path))
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    sys.path.insert(0, str(ROOT/'bench'))
    import gpu
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(gpu.FILES)
    ds = {ph: json.loads((tmp_path/f'{ph}.json').read_text()) for ph in gpu.PHASE_KEYS}
    for ph, keys in gpu.PHASE_KEYS.items():
        d = ds[ph]
        assert d['ok'] and d['smoke'] and not (set(keys) - set(d)), (ph, d.get('error'), set(keys) - set(d))
        if ph != 'step1': assert not set(gpu.HEAD_KEYS) - set(d) and d['recipes']['seed000']['arch'] == 'dyn_res4', ph
    assert ds['step1']['wheels']['rc'] == 0 and any(w.startswith('fastai-') for w in ds['step1']['wheels']['files'])
    assert ds['checks']['impls_ok'] and ds['checks']['data'] == dict(ds['checks']['data'], train=500, test=1100)
    assert {o['dtype'] for o in ds['checks']['impls']} == {'fp32', 'bf16'} and len(ds['checks']['presets']) == 8
    hs = ds['checks']['host_syncs']
    assert hs['dyn_learner']['per_batch'] == 0 and hs['fastai_recorder']['per_batch'] == 2  # fastai reads the loss and the accuracy
    assert all(v['eager']['img_s'] > 0 for v in ds['throughput']['presets'].values())
    assert sum('img_s' in v['compiled'] for v in ds['throughput']['presets'].values()) == 1  # the rest: compile budget spent
    assert ds['plan']['chosen'] == 'seed000' and len(ds['plan']['candidates']) == 5
    rr = ds['report_run']
    assert rr['name'] == 'seed000' and rr['status'] == 'done' and rr['epochs_done'] == 1 == len(rr['history']) and rr['report_acc'] == 92.15
    assert 0 <= rr['acc_exact1000'] <= 1 and rr['n_exact'] == 1000 and rr['n_jpeg'] == 100 and 'StopOnNanLoss' in rr['callbacks']
    assert rr['compiled'] and not rr.get('compile_error')  # a rehearsal trains the report run compiled (eager backend)
    f = ds['fast94']
    assert len(f['runs']) == 1 and f['runs'][0]['tta'] and f['airbench94']['status'].startswith('not available')
    s = ds['summary']
    assert s['all_ok'] and [p['phase'] for p in s['phases']] == ['checks', 'throughput', 'plan', 'report_run', 'fast94', 'summary']
    assert s['results']['report_run']['acc_exact1000'] == rr['acc_exact1000'] and s['step2_s'] < 150

# Each part of bench/speedrun.py on tiny settings, one test per part (so that pytest-xdist spreads them): the JSON has
# what the Benchmarks page reads
def test_speedrun_part_smoke(tmp_path, cifar_root):
    r = main_of('bench/speedrun.py', 'speedrun', '--data', str(cifar_root), '--seeds', '0', '--n-jpeg', '100', '--loaded-ok',
            '--out', str(tmp_path/'s.json'), '--', '--n-train', '300', '--epochs', '1', '--width', '0.25')
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads((tmp_path/'s.json').read_text())
    run0 = d['runs'][0]
    assert 0 <= run0['acc_exact1k_tta'] <= 1 and run0['wall_s'] > run0['startup_s'] > 0 and len(run0['epoch_end_s']) == 1
    assert set(run0['time_to']) == {'70', '75', '80', '85', '90'} and d['machine']['fastai']
    assert (d['summary'] is None) == run0['loaded']  # a run beside other tests may count as loaded: no summary from it
    if d['summary'] is not None: assert set(d['summary']['time_to']) == set(run0['time_to'])

def test_ablation_part_smoke(tmp_path, cifar_root):
    r = main_of('bench/speedrun.py', 'ablation', '--data', str(cifar_root), '--seeds', '0', '--n-train', '300', '--epochs', '1',
            '--n-valid', '200', '--out', str(tmp_path/'a.json'))  # 200 test images: scoring the 1k thrice per arm was most of its time
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads((tmp_path/'a.json').read_text())
    assert {x['arm'] for x in d['runs']} == {'dynblocks', 'static', 'xresnet18'}
    f = {k: v['flops'] for k, v in d['arms'].items()}
    assert abs(f['static']/f['dynblocks'] - 1) < 0.05 and abs(f['xresnet18']/f['dynblocks'] - 1) < 0.1  # about the same FLOPs
    r = main_of('bench/speedrun.py', 'ablation', '--n-valid', '2000')  # JPEG copies would be scored as exact: refused before any work
    assert r.returncode == 2 and 'give 1 to 1000' in r.stderr.splitlines()[-1], r.stderr[-500:]

def test_overhead_part_smoke(tmp_path, cifar_root):
    r = main_of('bench/speedrun.py', 'overhead', '--data', str(cifar_root), '--batches', '2', '--data-images', '512',
            '--repeats', '1', '--workers', '0', '--out', str(tmp_path/'o.json'))
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads((tmp_path/'o.json').read_text())
    assert d['training_loop']['ratio'] > 0 and d['data_path']['speedup_vs_best'] > 0

def test_throughput_part_smoke(tmp_path, cifar_root):
    r = main_of('bench/speedrun.py', 'throughput', '--data', str(cifar_root), '--widths', '0.25', '0.5', '--bss', '8', '16',
            '--images', '32', '--repeats', '1', '--loaded-ok', '--out', str(tmp_path/'t.json'))
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads((tmp_path/'t.json').read_text())
    assert [(x['width'], x['bs']) for x in d['runs']] == [(0.25, 8), (0.5, 8), (0.25, 16), (0.5, 16)]
    assert all(x['img_s'] > 0 and x['gflop_s'] > 0 for x in d['runs']) and d['runs'][1]['fwd_flops'] > d['runs'][0]['fwd_flops']
    assert d['choice']['fastest_bs'] in (8, 16) and 'loaded' in d['load']

def test_memory_part_smoke(tmp_path):
    r = main_of('bench/speedrun.py', 'memory', '--presets', 'dyn_tiny', '--bs', '8', '--out', str(tmp_path/'m.json'))
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path/'m.json').read_text())['runs'][0]['peak_mib'] > 0

def test_onnx_benchmark_smoke(tmp_path):
    r = main_of('bench/onnx_speed.py', '--smoke', '--out', str(tmp_path/'o.json'))
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads((tmp_path/'o.json').read_text())
    assert d['machine']['onnxruntime'] and d['command'].startswith('python bench/onnx_speed.py --smoke')
    assert [(o['variant'], o['bs']) for o in d['results']] == [('any batch (fused)', 1), ('any batch (fused)', 4), ('batch 1 (aggregate)', 1)]
    for o in d['results']:
        assert o['max_abs_diff'] <= 1e-4 and o['ort_img_s'] > 0 and set(o['eager']) == {'contiguous', 'channels_last'}, o

def test_pays_study_smoke(tmp_path):
    "bench/pays.py (issue 42) on tiny settings: the study's arms handed to `compare`, its results copied where the page reads them"
    sys.path.insert(0, str(ROOT/'bench'))
    import pays
    c = pays.config('speedrun', tmp_path)
    names = [a.name for a in c.arms]
    assert names == ['twin', 'static_flops', *pays.DYNAMIC, 'twin_time'] and [a.name for a in c.arms if a.screen] == list(pays.DYNAMIC)
    assert c.keep == 3 and c.arm('twin_time').time_of == 'best_valid'  # every idea screened on held-out images; the twin given the first one's seconds
    assert (c.seeds, c.max_seeds, c.margin, c.extend) == ([0, 1, 2], 5, 0.5, 3) and c.passes == 3 and c.n_train == 45_000 and c.exact == 1000
    assert c.arm('static_flops').model_kw['width'] > 1 and all(a.recipe == 'cpu10' and a.recipe_kw['tta'] == 'flip' for a in c.arms)
    r = main_of('bench/pays.py', 'run', '--smoke', '--data', 'sample', '--work', str(tmp_path/'work'), '--out', str(tmp_path/'out'))
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    s = json.loads((tmp_path/'out'/'speedrun'/'summary.json').read_text())
    screened = {k: a['screen'] for k, a in s['arms'].items() if a['screen']}
    assert s['complete'] and sorted(screened.values()) == ['kept', 'out'], screened  # two ideas, the one its sweep ranks first kept
    kept = next(k for k, v in screened.items() if v == 'kept')
    assert s['arms'][kept]['n'] == 1 and s['arms'][next(k for k, v in screened.items() if v == 'out')]['n'] == 0
    assert s['arms']['twin_time']['time_of'] == kept == s['best_dynamic_by_valid'] and 'vs_baseline' in s['arms']['static_flops']
    assert sorted(p.name for p in (tmp_path/'out'/'speedrun').iterdir()) == ['compare.json', 'pareto.png', 'results.jsonl', 'summary.json']

def test_report002_readings_smoke(tmp_path):
    "bench/report002.py readings (issue 41) on tiny settings: one short run per reading of the report, the overrides applied"
    r = main_of('bench/report002.py', 'readings', '--data', 'sample', '--n-train', '32', '--epochs', '1', '--n-valid', '16',
                '--out', str(tmp_path/'r.json'))
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    d = json.loads((tmp_path/'r.json').read_text())
    assert len(d['rows']) == 5 and all(0 <= o['acc'] <= 1 for o in d['rows'])
    pre, sgd, three, t50, dec = (o['ran'] for o in d['rows'])  # each reading trained as it says, the schedule compressed to 1 of 20 epochs
    assert (pre['opt'], sgd['opt'], pre['t_max'], t50['t_max'], dec['t_max'], dec['eta_min']) == ('adam', 'sgd', 10, 2.5, 1, 3.7168e-5)
    assert three['model_kw'] == {'widths': [32, 128, 256], 'stem': 16} and d['rows'][2]['params'] != d['rows'][0]['params']
    assert d['machine']['cpu'] and d['epochs'] == 1

def test_report002_tune_record(tmp_path):
    "bench/report002.py tune (issue 41): the study's trials, the best by validation loss, and where the report's choice ranks"
    import optuna
    st = optuna.create_study(study_name='s', storage=f'sqlite:///{tmp_path}/t.db')
    D = optuna.distributions
    dist = dict(opt=D.CategoricalDistribution(['sgd', 'adam']), lr=D.FloatDistribution(1e-5, 1e-2, log=True),
                bs=D.CategoricalDistribution([8, 16, 32]))
    for opt, lr, bs, v in [('sgd', 1e-2, 8, 1.2), ('adam', 3e-4, 16, 1.4), ('adam', 5e-3, 16, 1.3), ('adam', 2e-4, 32, 1.6)]:
        st.add_trial(optuna.trial.create_trial(params=dict(opt=opt, lr=lr, bs=bs), distributions=dist, value=v))
    (tmp_path/'load').write_text('0.5\n1.5\n1.0\n')
    r = main_of('bench/report002.py', 'tune', f'sqlite:///{tmp_path}/t.db', '--study', 's', '--command', 'dynblocks tune ...',
                '--fidelity', 'none', '--load', str(tmp_path/'load'), '--out', str(tmp_path/'t.json'))
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    d = json.loads((tmp_path/'t.json').read_text())
    assert d['best']['params'] == dict(opt='sgd', lr=1e-2, bs=8) and len(d['trials']) == 4
    assert d['report_choice_rank'] == dict(rule=d['report_choice_rank']['rule'], rank=3, of=4)  # adam, 16, 3e-4: third by loss
    assert {k: d['report_choice_ranks'][k] for k in ('opt', 'bs', 'lr')} == dict(opt=2, bs=2, lr=3)  # each choice alone
    assert d['load'] == dict(samples=3, load1_median=1.0, load1_max=1.5, every_s=60) and d['machine']['cpu']

def test_pays_sentences():
    "bench/pays_text.py (the page's and the index's one builder): figures from the JSON, a missing arm named, no sign hidden by rounding"
    sys.path.insert(0, str(ROOT/'bench'))
    from pays_text import against, pts
    s = lambda m, t: {'acc_tta': {'mean': m, 'min': m - .01, 'max': m + .01}, 'train_s': {'mean': t}, 'n': 3}
    P = {'summary': {'x4': {'sigmoid': s(.908, 1159.), 'twin_lr': s(.9084, 699.)}}, 'verdict': {'x4': {'best_dynamic': 'sigmoid'}}}
    assert against(P, 'x4', [('twin_lr', 'the twin'), ('xresnet18', "fastai's xresnet18")]) == (
        "The twin reaches 90.8 % (89.8–91.8) over 3 seeds in 699 s (−0.04 points for sigmoid, which trains 1.7× as long); "
        "fastai's xresnet18 has not run at this budget.")
    assert pts(0) == '+0.0' and pts(0.012) == '+1.2' and pts(-0.012) == '−1.2' and pts(-0.0004) == '−0.04'  # `signed`: a sign never hidden

def test_pays_headline_covers_x4():
    "x4 has no sweep (it reuses the speedrun's lr): its dynamic arm is the speedrun validation's choice, and the headline speaks of it"
    sys.path.insert(0, str(ROOT/'bench'))
    from pays_text import chosen, headline
    from dynblocks.measure import verdict
    arm = lambda d, lo, hi: {'n': 5, 'vs_baseline': {'verdict': {'all': verdict(d, lo, hi)}, 'time_ratio': 1.3}, 'latency': None}
    sp = {'best_dynamic_by_valid': 'best', 'baseline': 'twin', 'complete': True, 'arms': {'twin': {'n': 5}, 'best': arm(-.1, -.6, .5)}}
    x4 = {'best_dynamic_by_valid': None, 'baseline': 'twin', 'complete': False, 'runs': 13, 'total': 23, 'arms': {'twin': {'n': 5}, 'best': arm(.3, -.1, .9)}}
    assert chosen(x4, sp) == 'best' and chosen(x4) is None and chosen(sp) == 'best' and chosen(None, sp) is None
    assert chosen({**x4, 'arms': {'twin': {}}}, sp) is None  # the speedrun's choice did not run at x4
    h = headline(sp, x4)
    assert h.startswith("At the CPU speedrun budget the dynamic arm the validation ranks first (best) is −0.1 points, 95 % interval −0.6 to +0.5") and \
        "at four times the passes the same arm (best, its lr from the speedrun's sweep) is +0.3 points, 95 % interval −0.1 to +0.9" in h and "13 of its 23 runs" in h, h

def test_no_script_hides_a_package(monkeypatch):
    "A script in bench/ or tools/ named like an installed module (bench/onnx.py once was) hides it wherever that folder is on the path"
    import importlib.util
    dirs = {str(ROOT/d) for d in ('bench', 'tools')}
    monkeypatch.setattr(sys, 'path', [p for p in sys.path if str(Path(p or '.').resolve()) not in dirs])  # as the installed world sees it
    def installed(name):
        mod = sys.modules.get(name)
        if mod is not None and str(Path(getattr(mod, '__file__', None) or '.').resolve().parent) in dirs:
            monkeypatch.delitem(sys.modules, name)  # imported from bench/ by another test: look past it
        spec = importlib.util.find_spec(name)
        return spec is not None and spec.origin not in (None, 'namespace')  # ROOT/bench itself is only a namespace
    clash = [f"{d}/{p.name}" for d in ('bench', 'tools') for p in sorted((ROOT/d).glob('*.py')) if installed(p.stem)]
    assert not clash, f"rename {clash}: each hides the installed module of the same name"

def test_load_meter_leaves_out_this_process():
    "A measurement made inside the benchmark's own process (as bench/speedrun.py's throughput part): its CPU is not another's"
    import time
    from dynblocks.measure import LoadMeter, cpu_busy
    b0, t0 = cpu_busy(), time.time()
    with LoadMeter(0.02) as lm:
        own0 = time.process_time()
        while time.process_time() - own0 < 0.5: sum(range(10000))  # this process busy for half a CPU second
    busy, wall = cpu_busy() - b0, time.time() - t0
    assert lm.record['other_cores']*wall <= busy - 0.4, (lm.record, busy, wall)  # the machine's busy seconds less (most of) its own
