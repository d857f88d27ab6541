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
