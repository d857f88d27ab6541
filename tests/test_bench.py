"The benchmark scripts run end to end (smoke tests on tiny settings: benchmarks print figures, tests check they work)."
import json, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def run(*args):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)

def test_block_and_data_benchmarks(tmp_path, cifar_root):
    r = run('bench/bench.py', 'block', '--presets', 'dyn_tiny', '--bs', '8', '--warmup', '0', '--repeats', '1',
            '--out', str(tmp_path/'b.json'))
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads((tmp_path/'b.json').read_text())
    assert {o['impl'] for o in d['results']} == {'reference', 'fused'} and d['machine']['torch']
    r = run('bench/bench.py', 'data', '--data', str(cifar_root), '--n', '500', '--bs', '100', '--repeats', '1',
            '--out', str(tmp_path/'d.json'))
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path/'d.json').read_text())['results'][0]['speedup'] > 0

def test_gpu_time_to_accuracy_script_smoke_on_cpu(tmp_path, cifar_root):
    r = run('bench/gpu.py', 'tta', '--data', str(cifar_root), '--device', 'cpu', '--n-train', '200', '--n-test', '200',
            '--runs', '1', '--epochs', '1', '--skip-airbench', '--no-warmup', '--out', str(tmp_path/'t.json'))
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads((tmp_path/'t.json').read_text())
    assert d['dynblocks']['n_runs'] == 1 and 0 <= d['dynblocks']['acc_exact1000_mean'] <= 1

def test_speedrun_benchmark_parts_smoke(tmp_path, cifar_root):
    "Each part of bench/speedrun.py on tiny settings: the JSON has what the Benchmarks page reads"
    r = run('bench/speedrun.py', 'speedrun', '--data', str(cifar_root), '--seeds', '0', '--n-jpeg', '100',
            '--out', str(tmp_path/'s.json'), '--', '--n-train', '300', '--epochs', '1', '--width', '0.25')
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads((tmp_path/'s.json').read_text())
    run0 = d['runs'][0]
    assert 0 <= run0['acc_exact1k_tta'] <= 1 and run0['wall_s'] > run0['startup_s'] > 0 and len(run0['epoch_end_s']) == 1
    assert set(d['summary']['time_to']) == {'70', '75', '80', '85'} and d['machine']['fastai']
    r = run('bench/speedrun.py', 'ablation', '--data', str(cifar_root), '--seeds', '0', '--n-train', '300', '--epochs', '1',
            '--out', str(tmp_path/'a.json'))
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads((tmp_path/'a.json').read_text())
    assert {x['arm'] for x in d['runs']} == {'dynblocks', 'static', 'xresnet18'}
    f = {k: v['flops'] for k, v in d['arms'].items()}
    assert abs(f['static']/f['dynblocks'] - 1) < 0.05 and abs(f['xresnet18']/f['dynblocks'] - 1) < 0.1  # about the same FLOPs
    r = run('bench/speedrun.py', 'overhead', '--data', str(cifar_root), '--batches', '2', '--data-images', '512',
            '--repeats', '1', '--workers', '0', '--out', str(tmp_path/'o.json'))
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads((tmp_path/'o.json').read_text())
    assert d['training_loop']['ratio'] > 0 and d['data_path']['speedup_vs_best'] > 0
    r = run('bench/speedrun.py', 'memory', '--presets', 'dyn_tiny', '--bs', '8', '--out', str(tmp_path/'m.json'))
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path/'m.json').read_text())['runs'][0]['peak_mib'] > 0

def test_onnx_benchmark_smoke(tmp_path):
    r = run('bench/onnx.py', '--smoke', '--out', str(tmp_path/'o.json'))
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads((tmp_path/'o.json').read_text())
    assert d['machine']['onnxruntime'] and d['command'].startswith('python bench/onnx.py --smoke')
    assert [(o['variant'], o['bs']) for o in d['results']] == [('any batch (fused)', 1), ('any batch (fused)', 4), ('batch 1 (aggregate)', 1)]
    for o in d['results']:
        assert o['max_abs_diff'] <= 1e-4 and o['ort_img_s'] > 0 and set(o['eager']) == {'contiguous', 'channels_last'}, o
