"""GPU day (issue 23): a lent GPU becomes the reports' figures, in one prepared, rehearsed, time-boxed procedure.

A session that is lent a GPU (one H200, at most 15 minutes of device time in all, start-up included; one command at
most 10 minutes; the machine goes back 30 s after a command unless the next one follows) spends it on figures:

1. Here, on the CPU machine, before any GPU call:

       python bench/gpu.py prepare

   makes `.gpu/` (ignored through `.git/info/exclude`): CIFAR-10 as two lossless shards (`cifar10_shard_a.pkl`,
   `cifar10_shard_b.pkl`, made by `../shared/gpu/cifar_shards.py pack`, about 48 MiB each, checked by sha256 when
   unpacked), a copy of `cifar_shards.py`, and `wheels/` (fastai and the pure-Python packages it needs that the GPU
   machine lacks, from `../shared/gpu/wheels/`, plus airbench 0.1.8 when a wheel of it can be had). It checks that each
   call's working tree plus what it carries stays under 64 MiB, and prints the plan and the two `run` calls to paste.
   `python bench/gpu.py plan` prints the plan alone.

2. On the GPU machine, the two calls `prepare` printed, one right after the other (the machine stays warm 30 s):

       python3 bench/gpu.py day --step 1 --out $OUT   # carries wheels + shard a: wheels into .gpu/site, shard a into .gpu/data
       python3 bench/gpu.py day --step 2 --out $OUT   # carries shard b: unpack, check, then the phases below, <= 9 minutes

   Step 2 runs these phases, each writing its JSON to `--out` the moment it ends (a command cut short still returns
   what it measured), each with the GPU, torch version, date and the exact recipes (`dataclasses.asdict`):

   - `checks.json`: CUDA seen, the bf16 matrix-product peak, the data unpacked and checked; `reference`, `fused` and
     `aggregate` equal on the device in fp32 (TF32 off) and within the stated bf16 tolerance (`TOL`), over
     `impl_sweep()`; one training step of every preset in `list_models()`;
   - `throughput.json`: every preset at its recipe's batch size, bf16 autocast and channels_last, eager and (within a
     compile budget, most needed first) `torch.compile`d, with the compile time;
   - `plan.json`: from the measured throughput, each report run's expected seconds; the longest useful run that fits
     what is left (the full `seed000` if it fits, else the first report recipe in order that fits whole, with why);
   - `report_run.json`: that run, in bf16 with channels_last (rewritten after every epoch; a deadline stops it rather
     than the command's limit); accuracy on the exact test images 0-999 and, apart, on 1000-9999 (JPEG copies);
   - `fast94.json`: `fast94` against airbench94 (PyPI airbench 0.1.8, never vendored: "not available" when its wheel
     did not travel), wall time and accuracy per run, time to 94 %;
   - `summary.json` (each phase's expected and measured seconds, the results) and `log.txt`.

3. `give_back`, copy the returned files into `bench/results/gpu-day-<date>/` and commit them: the Reports and
   Benchmarks pages read them (and say "not run" while there are none).

If step 2 finds a fresh machine (the warm one went back: no `.gpu/site` or shard a), it says so: run step 1 again,
then step 2 with a smaller `--budget`.

The plan for the H200 comes from FLOP counts (`dynblocks.reports.recipe_flops`) at a fraction of the measured bf16
peak, with a host time per batch: assumptions kept in `bench/results/gpu-assumptions.json` until a GPU day measures
them. The CPU rehearsal runs all of it on a CPU (mini shards packed from a temporary copy, the wheels installed for
Python 3.12 into a temporary folder but not imported, a few hundred images, one epoch, `torch.compile` with its
`eager` backend, the same phases and files) in about a minute; CI runs it (`tests/test_bench.py`):

    python bench/gpu.py day --device cpu --smoke --out DIR
"""
from __future__ import annotations
import argparse, contextlib, copy, dataclasses, datetime, importlib.util, io, json, math, os, pickle, shutil
import subprocess, sys, tempfile, time, traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # dynblocks from this checkout (the GPU machine has it nowhere else)
import torch
from bench import machine, RESULTS

GPU_DIR = ROOT/'.gpu'  # ignored (.git/info/exclude): what the two calls carry, and what step 1 leaves for step 2
SHARED = ROOT.parent/'shared'
MIB = 2**20
LIMIT = 64*MIB  # what travels with one call: the working tree plus the carried paths
BUDGET = 540  # seconds of step 2 (9 minutes)
REPORTS = ['seed000', 'seed001', 'seed002', 'seed003', 'seed004']  # report recipes, in the order the plan tries them
TOL = dict(fp32=1e-4, bf16=3e-2)  # fp32: largest |impl - reference| / largest |reference|; bf16: error floor (see phase_checks)
EXACT = 1000  # test images 0-999 are the official ones; 1000-9999 are JPEG copies (../shared/data/README.md)
ASSUME = RESULTS/'gpu-assumptions.json'
FILES = ['step1.json', 'checks.json', 'throughput.json', 'plan.json', 'report_run.json', 'fast94.json', 'summary.json', 'log.txt']
PHASE_KEYS = {  # what each phase's JSON holds (tests/test_bench.py checks these)
    'step1': ['wheels', 'shard', 'imports', 'cuda', 'airbench'],
    'checks': ['cuda', 'peak', 'data', 'impls', 'impls_ok', 'tolerance', 'presets', 'host_syncs'],
    'throughput': ['presets', 'compile_budget_s'],
    'plan': ['left_s', 'candidates', 'chosen', 'why', 'compile', 'fast94_reserve_s'],
    'report_run': ['recipe', 'epochs_done', 'history', 'wall_s', 'acc_exact1000', 'acc_jpeg9000', 'report_acc'],
    'fast94': ['recipe', 'runs', 'airbench94', 'time_to_94'],
    'summary': ['phases', 'results', 'all_ok'],
}
HEAD_KEYS = ['phase', 'smoke', 'machine', 'device', 'recipes', 'model_kw']


# ------------------------------------------------------------------------------------------------- helpers

def say(*a): print(*a, flush=True)

def _sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()

def _write(out:Path, name:str, d:dict):
    "Write `d` as `out/name` at once (temporary file, then rename), so a cut command leaves whole files only"
    tmp = out/f'.{name}.tmp'
    tmp.write_text(json.dumps(d, indent=1, default=str)); tmp.replace(out/name)

def assumptions() -> dict:
    "The plan's assumptions (bf16 peak, fraction of it reached, host time per batch, ...) from the committed JSON"
    return json.loads(ASSUME.read_text())

def _tool(path:Path):
    "The `cifar_shards.py` module at `path`"
    spec = importlib.util.spec_from_file_location('cifar_shards', path)
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
    return m

def _tree_bytes() -> dict:
    "Bytes of what a call sends besides the carried paths: tracked plus untracked-not-ignored files (and .git, reported apart)"
    def du(args):
        names = subprocess.run(['git', 'ls-files', '-z', *args], cwd=ROOT, capture_output=True, check=True).stdout.split(b'\0')
        return sum((ROOT/n.decode()).stat().st_size for n in names if n and (ROOT/n.decode()).is_file())
    git = sum(p.stat().st_size for p in (ROOT/'.git').rglob('*') if p.is_file())
    return dict(tracked=du([]), untracked=du(['--others', '--exclude-standard']), git=git)

def _exclude(line:str):
    "Add `line` to .git/info/exclude (once)"
    f = ROOT/'.git'/'info'/'exclude'
    f.parent.mkdir(parents=True, exist_ok=True)
    old = f.read_text() if f.exists() else ''
    if line not in old.splitlines(): f.write_text(old + ('' if old.endswith('\n') or not old else '\n') + line + '\n')


# ------------------------------------------------------------------------------------------------- the plan (offline)

def day_recipes(device:str, smoke:bool) -> tuple:
    "The recipes the day runs, as run: bf16 on a GPU; on a smoke run one epoch on the mini data with small batches. Also `create_model` arguments"
    from dynblocks.recipes import recipe
    gpu = device.startswith('cuda')
    rs = {}
    for n in REPORTS + ['fast94']:
        kw = dict(precision='bf16') if gpu else {}
        if smoke: kw.update(epochs=1, bs=25, n_train=None, warmup=0)
        rs[n] = recipe(n, **kw)
    return rs, (dict(width=0.25) if smoke else {})

def preset_bs(smoke:bool) -> dict:
    "Batch size at which each preset's throughput is measured: its recipe's (the first that uses it), else 256"
    from dynblocks.recipes import recipe
    from dynblocks.models import list_models
    bs = {}
    for n in REPORTS + ['fast94', 'cpu10', 'default']:
        r = recipe(n); bs.setdefault(r.arch, r.bs)
    return {m: 8 if smoke else bs.get(m, 256) for m in list_models()}

def compile_order(rs:dict) -> list:
    "Presets in the order their compiled throughput is worth measuring: the report runs' and fast94's first"
    from dynblocks.models import list_models
    first = list(dict.fromkeys(r.arch for r in rs.values()))
    return first + [m for m in list_models() if m not in first]

def flop_plan(budget:float=BUDGET, A:dict|None=None) -> dict:
    "The H200 plan from FLOP counts and the stated assumptions: each phase's expected seconds, the report run chosen"
    from dynblocks.reports import gpu_seconds
    from dynblocks.models import list_models
    A = A or assumptions()
    rs, _ = day_recipes('cuda', smoke=False)
    cost = lambda r: gpu_seconds(r, A['peak_bf16_tflops'], A['mfu'], A['batch_s'], A['valid_batch_s'])
    n = len(list_models())
    fast = (A['fast94_runs'] + 1)*cost(rs['fast94']) + (A['airbench_runs'] + 1)*A['airbench_run_s'] + A['fast94_setup_s']
    fixed = [('stage: unpack shard b, load CIFAR-10', A['stage_s']), ('checks: impls fp32/bf16, a step of each preset', A['checks_s']),
             (f'throughput: {n} presets eager, compiled within {A["compile_budget_s"]} s', n*A['throughput_s'] + A['compile_budget_s']),
             ('plan', A['plan_s'])]
    tail = [(f"fast94 ({A['fast94_runs']} runs and a warm-up) vs airbench94 ({A['airbench_runs']} runs and a warm-up)", fast),
            ('summary and margin', A['margin_s'])]
    left = budget - sum(s for _, s in fixed + tail)
    cands = [dict(recipe=k, arch=rs[k].arch, epochs=rs[k].epochs, expected_s=cost(rs[k])) for k in REPORTS]
    chosen = next((c for c in cands if c['expected_s'] <= left), None)
    run = [(f"report run: {chosen['recipe']} ({chosen['arch']}, {chosen['epochs']} epochs)" if chosen else 'report run: none fits',
            chosen['expected_s'] if chosen else 0.)]
    phases = fixed + run + tail
    return dict(budget_s=budget, left_for_report_run_s=left, candidates=cands, chosen=chosen and chosen['recipe'],
                why=_why(cands, chosen, left), phases=[dict(phase=p, expected_s=s) for p, s in phases],
                total_s=sum(s for _, s in phases), assumptions=A)

def _why(cands, chosen, left):
    skipped = [f"{c['recipe']} needs {c['expected_s']:.0f} s" for c in cands[:cands.index(chosen) if chosen else len(cands)]]
    s = f"{left:.0f} s are left for the report run"
    if skipped: s += f"; {', '.join(skipped)}: more than that"
    return s + (f"; {chosen['recipe']} needs {chosen['expected_s']:.0f} s: it fits whole" if chosen else '; none fits whole')

def print_plan(p:dict):
    A = p['assumptions']
    say(f"Plan for step 2 on an {A['gpu']} (budget {p['budget_s']:.0f} s): FLOPs at {A['mfu']:.0%} of {A['peak_bf16_tflops']:.0f} "
        f"TFLOP/s bf16 + {A['batch_s']*1e3:.0f} ms host time per training batch ({A['valid_batch_s']*1e3:.0f} ms per validation "
        "batch): assumptions until measured")
    for o in p['phases']: say(f"  {o['expected_s']:7.0f} s  {o['phase']}")
    say(f"  {p['total_s']:7.0f} s  total ({'fits' if p['total_s'] <= p['budget_s'] else 'DOES NOT FIT'} {p['budget_s']:.0f} s)")
    say('  report runs: ' + ', '.join(f"{c['recipe']} {c['expected_s']:.0f} s" for c in p['candidates']))
    say(f"  chosen: {p['chosen']} ({p['why']}); on the day the measured throughput decides again")


# ------------------------------------------------------------------------------------------------- prepare (CPU machine)

def _mini_cifar(src:Path, dest:Path, n_train:int=100, n_test:int=EXACT + 100):
    "A small copy of the CIFAR-10 pickles (the first images of each batch) for the rehearsal's shards"
    d = dest/'cifar-10-batches-py'; d.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob('*_batch*')):
        b = pickle.load(open(f, 'rb'), encoding='bytes')
        k = n_test if f.name == 'test_batch' else n_train
        b = {**b, b'data': b[b'data'][:k], b'labels': list(b[b'labels'])[:k], b'filenames': list(b[b'filenames'])[:k]}
        with open(d/f.name, 'wb') as o: pickle.dump(b, o, protocol=2)
    shutil.copy(src/'batches.meta', d/'batches.meta')
    return d

def _airbench_wheel(wd:Path, shared_wheels:Path, download:bool) -> str:
    "airbench 0.1.8 into `wd` as a wheel: from the shared wheels, else built from PyPI's sdist (`download`); what happened"
    have = sorted(wd.glob('airbench-0.1.8-*.whl')) or sorted(shared_wheels.glob('airbench-0.1.8-*.whl'))
    if have:
        if have[0].parent != wd: shutil.copy(have[0], wd)
        return f'wheel {have[0].name}'
    if not download: return 'not available (no wheel; prepare ran with --no-download)'
    with tempfile.TemporaryDirectory() as t:
        r = subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', '--no-binary', ':all:', '-d', t,
                            'airbench==0.1.8'], capture_output=True, text=True, timeout=120)
        sd = sorted(Path(t).glob('airbench-0.1.8*'))
        if r.returncode or not sd: return 'not available (no wheel, and PyPI could not be reached)'
        r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation', '-w', str(wd), str(sd[0])],
                           capture_output=True, text=True, timeout=120)
        whl = sorted(wd.glob('airbench-0.1.8-*.whl'))
        return f'wheel {whl[0].name} (built from PyPI\'s sdist)' if whl else f'not available (building the wheel failed: {r.stderr[-200:]})'

def prepare(gpu_dir:Path=GPU_DIR, shared:Path=SHARED, data:Path|None=None, mini:bool=False, download:bool=True,
            repack:bool=False, budget:float=BUDGET, show:bool=True) -> dict:
    "Fill `gpu_dir` with the shards, the shard tool and the wheels; check each call's size; print the plan and the calls"
    tool, wheels = shared/'gpu'/'cifar_shards.py', shared/'gpu'/'wheels'
    data = data or shared/'data'/'cifar-10-batches-py'
    for p in (tool, wheels, data):
        if not p.exists(): raise SystemExit(f"{p} is missing: prepare needs ../shared (give --shared) with gpu/ and data/.")
    gpu_dir.mkdir(parents=True, exist_ok=True)
    if gpu_dir == GPU_DIR: _exclude('/.gpu/')
    shutil.copy(tool, gpu_dir/'cifar_shards.py')
    wd = gpu_dir/'wheels'; wd.mkdir(exist_ok=True)
    for w in sorted(wheels.glob('*.whl')):
        if not (wd/w.name).exists() or (wd/w.name).stat().st_size != w.stat().st_size: shutil.copy(w, wd)
    airbench = 'not available (a rehearsal does not fetch it)' if mini else _airbench_wheel(wd, wheels, download)
    shards = [gpu_dir/'cifar10_shard_a.pkl', gpu_dir/'cifar10_shard_b.pkl']
    if mini or repack or not all(s.exists() for s in shards):
        t = time.time()
        with tempfile.TemporaryDirectory() as tmp:
            src = _mini_cifar(data, Path(tmp)) if mini else data
            with contextlib.redirect_stdout(io.StringIO()): _tool(tool).pack(src, gpu_dir)
        if show: say(f"packed {'mini ' if mini else ''}shards in {time.time() - t:.0f} s")
    size = lambda p: sum(f.stat().st_size for f in p.rglob('*') if f.is_file()) if p.is_dir() else p.stat().st_size
    tree = _tree_bytes()
    send = tree['tracked'] + tree['untracked']
    calls = [dict(command='PYTHONUNBUFFERED=1 python3 bench/gpu.py day --step 1 --out $OUT',
                  carry=['.gpu/wheels', '.gpu/cifar_shards.py', '.gpu/cifar10_shard_a.pkl'], timeout_s=240),
             dict(command=f'PYTHONUNBUFFERED=1 python3 bench/gpu.py day --step 2 --budget {budget:.0f} --out $OUT',
                  carry=['.gpu/cifar_shards.py', '.gpu/cifar10_shard_b.pkl'], timeout_s=600)]
    for c in calls:
        c['bytes'] = send + sum(size(gpu_dir/Path(p).relative_to('.gpu')) for p in c['carry'])
        assert len(c['command']) < 2000
    info = dict(gpu_dir=str(gpu_dir), tree=tree, airbench=airbench, calls=calls,
                wheels=sorted(w.name for w in wd.glob('*.whl')), shards={s.name: s.stat().st_size for s in shards})
    too_big = [c for c in calls if c['bytes'] > LIMIT]
    if show:
        say(f"working tree that travels: {send/MIB:.1f} MiB (tracked {tree['tracked']/MIB:.1f}, untracked {tree['untracked']/MIB:.1f}); "
            f".git {tree['git']/MIB:.1f} MiB apart")
        for i, c in enumerate(calls, 1):
            say(f"call {i}: {c['bytes']/MIB:.1f} MiB of {LIMIT/MIB:.0f} (+ .git: {(c['bytes'] + tree['git'])/MIB:.1f})")
        say(f"airbench: {airbench}")
        if not mini: print_plan(flop_plan(budget))
        say('\nPaste these two device `run` calls, the second right after the first returns (the machine goes back after 30 s idle), '
            'then give_back, copy the files into bench/results/gpu-day-<date>/ and commit them:')
        for c in calls: say(json.dumps({k: c[k] for k in ('command', 'carry', 'timeout_s')}))
    if too_big: raise SystemExit(f"call(s) over {LIMIT/MIB:.0f} MiB: {[c['command'] for c in too_big]}; make the working tree smaller.")
    return info


# ------------------------------------------------------------------------------------------------- the day

class Day:
    "What the phases share: arguments, device, folders, data, the recipes and the results so far"
    def __init__(self, a, gpu_dir:Path, out:Path):
        self.a, self.gpu_dir, self.out = a, gpu_dir, out
        self.dev = torch.device(a.device)
        self.gpu = self.dev.type == 'cuda'
        self.smoke = a.smoke
        self.site, self.data_dir = gpu_dir/'site', gpu_dir/'data'
        self.t0 = time.time()
        self.deadline = self.t0 + a.budget
        self.phases, self.results, self.ok = [], {}, True
        self.recipes, self.model_kw = day_recipes(a.device, a.smoke)
        self.A = assumptions()

    def left(self): return self.deadline - time.time()

    def head(self, phase:str) -> dict:
        m = machine()
        if self.gpu: m['gpu_capability'] = '.'.join(map(str, torch.cuda.get_device_capability()))
        return dict(phase=phase, smoke=self.smoke, machine=m, device=str(self.dev), command=' '.join(sys.argv),
                    recipes={k: dataclasses.asdict(r) for k, r in self.recipes.items()}, model_kw=self.model_kw)

    def phase(self, name:str, fn, expected:float|None=None):
        "Run phase `fn`, write its JSON as soon as it ends (an error goes into the JSON), record its time"
        t = time.time()
        say(f"\n== {name} ({self.left():.0f} s left)")
        d = self.head(name)
        try: d.update(fn(d)); d['ok'] = d.get('ok', True)
        except Exception as e:
            d.update(ok=False, error=f'{type(e).__name__}: {e}', traceback=traceback.format_exc())
            say(d['traceback'])
        d['elapsed_s'] = time.time() - t
        if not d['ok']: self.ok = False
        self.phases.append(dict(phase=name, start_s=t - self.t0, elapsed_s=d['elapsed_s'], expected_s=expected, ok=d['ok'],
                                error=d.get('error')))
        _write(self.out, f'{name}.json', d)
        say(f"== {name}: {'ok' if d['ok'] else 'FAILED'} in {d['elapsed_s']:.1f} s -> {self.out/(name + '.json')}")
        self.results[name] = d
        return d


class _Tee(io.TextIOBase):
    "Write to a stream and to a log file"
    def __init__(self, s, f): self.s, self.f = s, f
    def write(self, x): self.s.write(x); self.f.write(x); self.f.flush(); return len(x)
    def flush(self): self.s.flush(); self.f.flush()
    def fileno(self): return self.s.fileno()
    def isatty(self): return False


def _python_here_is_the_gpus() -> bool: return sys.version_info[:2] == (3, 12)

def step1(a, gpu_dir:Path, out:Path) -> int:
    "Install the wheels into `gpu_dir/site`, unpack shard a into `gpu_dir/data`, check the imports"
    t0, res = time.time(), dict(phase='step1', smoke=a.smoke, machine=machine(), device=a.device, command=' '.join(sys.argv))
    wheels = sorted((gpu_dir/'wheels').glob('*.whl'))
    site = gpu_dir/'site'
    cmd = [sys.executable, '-m', 'pip', 'install', '-q', '--no-index', '--no-deps', '--no-compile', '--no-cache-dir',
           '--upgrade', '--target', str(site)]
    here = _python_here_is_the_gpus()
    if not here:  # a rehearsal on another Python: install for the GPU machine's Python 3.12 (checks the set), import none of it
        cmd += ['--python-version', '3.12', '--implementation', 'cp', '--only-binary=:all:'] + \
               [f'--platform={p}' for p in ('manylinux_2_28_x86_64', 'manylinux_2_17_x86_64', 'manylinux2014_x86_64')]
    r = subprocess.run(cmd + [str(w) for w in wheels], capture_output=True, text=True)
    res['wheels'] = dict(files=[w.name for w in wheels], rc=r.returncode, stderr=r.stderr[-2000:], site=str(site),
                         for_python='3.12', used_here=here)
    say(f"wheels: {len(wheels)} installed into {site} (rc {r.returncode})" + ('' if here else ' for Python 3.12; not imported here'))
    t = time.time()
    rs = subprocess.run([sys.executable, str(gpu_dir/'cifar_shards.py'), 'unpack', str(gpu_dir/'cifar10_shard_a.pkl'), str(gpu_dir/'data')],
                        capture_output=True, text=True)
    res['shard'] = dict(shard='a', rc=rs.returncode, out=rs.stdout[-1000:] + rs.stderr[-1000:], s=time.time() - t)
    say(f"shard a: rc {rs.returncode} in {time.time() - t:.1f} s")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + ([str(site)] if here else [])))
    probe = ("import json, torch, fastai, fastcore, dynblocks, dynblocks.all, dynblocks.train\n"
             "try:\n import airbench; ab = 'importable'\nexcept Exception as e: ab = f'not available ({type(e).__name__}: {e})'\n"
             "print(json.dumps(dict(dynblocks=dynblocks.__version__, fastai=fastai.__version__, fastcore=fastcore.__version__, "
             "torch=torch.__version__, airbench=ab)))")
    ri = subprocess.run([sys.executable, '-c', probe], env=env, cwd=ROOT, capture_output=True, text=True)
    try: res['imports'] = dict(rc=ri.returncode, **json.loads(ri.stdout.strip().splitlines()[-1]))
    except Exception: res['imports'] = dict(rc=ri.returncode or 1, stderr=ri.stderr[-3000:])
    res['airbench'] = res['imports'].get('airbench', 'not available (imports failed)')
    res['cuda'] = dict(available=torch.cuda.is_available(), name=torch.cuda.get_device_name() if torch.cuda.is_available() else None)
    say(f"imports: {res['imports']}")
    res['ok'] = r.returncode == 0 and rs.returncode == 0 and res['imports']['rc'] == 0 and (res['cuda']['available'] or a.device == 'cpu')
    res['elapsed_s'] = time.time() - t0
    _write(out, 'step1.json', res)
    say(f"step 1 {'ok' if res['ok'] else 'FAILED'} in {res['elapsed_s']:.1f} s -> {out/'step1.json'}")
    return 0 if res['ok'] else 1


# ------------------------------------------------------------------------------------------------- step 2's phases

def _amp(day): return torch.autocast(day.dev.type, dtype=torch.bfloat16, enabled=day.gpu)

def _peak(day) -> dict:
    "bf16 matrix-product rate on the device (8192³ on a GPU; a token size on a CPU rehearsal)"
    from bench import timeit
    n = 8192 if day.gpu else 256
    A = torch.randn(n, n, device=day.dev, dtype=torch.bfloat16 if day.gpu else torch.float32)
    t = timeit(lambda: A @ A, day.dev, 3, 10 if day.gpu else 2)
    return dict(n=n, dtype=str(A.dtype), tflops=2*n**3/t['median']/1e12)

def _rand_block(blk):
    "Random routers, branches and BN statistics, as the block page's equivalence test sets them"
    from torch import nn
    with torch.no_grad():
        if blk.delta is not None: blk.delta.normal_(0, 0.1)
        for m in blk.modules():
            if isinstance(m, nn.Linear):
                m.weight.normal_(0, 0.5)
                if m.bias is not None: m.bias.normal_(0, 0.5)
        for bn in (blk.bn, blk.post_bn):
            if bn is None: continue
            bn.running_mean.normal_(); bn.running_var.uniform_(0.5, 2); bn.weight.normal_(1, 0.2); bn.bias.normal_()
    return blk

def _ref_scale(blk, x, train) -> dict:
    "Largest magnitudes of the reference's output, gradients and BN statistics (what `check_impls` differences are relative to)"
    b = copy.deepcopy(blk); b.impl = 'reference'; b.train(train)
    xi = x.clone().requires_grad_(); y = b(xi)
    torch.manual_seed(0); (y*torch.randn_like(y)).sum().backward()
    big = lambda ts: max((t.abs().max().item() for t in ts if t is not None), default=0.)
    return dict(out=big([y]), grad_x=big([xi.grad]), grad_params=big([p.grad for p in b.parameters()]),
                bn_stats=big([t for n, t in b.named_buffers() if 'running' in n]))

def _impl_run(blk, x, impl, train, bf16) -> dict:
    "Output, input gradient and parameter gradients of `blk` under `impl`, in bf16 autocast or fp32, all as fp32"
    b = copy.deepcopy(blk); b.impl = impl; b.train(train)
    xi = x.clone().requires_grad_()
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16): y = b(xi)
    torch.manual_seed(0); (y.float()*torch.randn(y.shape, device=y.device)).sum().backward()
    return dict(out=y.detach().float(), grad_x=xi.grad.float(),
                grad_params={n: p.grad.float() for n, p in b.named_parameters() if p.grad is not None})

def _nrel(a, b) -> float:
    "‖a − b‖ / ‖b‖ (tensors, or dicts of them over their common keys)"
    if isinstance(b, dict):
        ks = [k for k in b if k in a]
        a, b = torch.cat([a[k].flatten() for k in ks]), torch.cat([b[k].flatten() for k in ks])
    return ((a - b).norm()/b.norm().clamp_min(1e-12)).item()

def _bf16_errors(blk, x, train, impls) -> dict:
    "Each implementation's norm-relative error in bf16 against the fp32 reference"
    ref = _impl_run(blk, x, 'reference', train, False)
    return {i: {k: _nrel(v, ref[k]) for k, v in _impl_run(blk, x, i, train, True).items()} for i in impls}

_HOST = {'item', '__bool__', '__float__', '__int__', '__index__', 'tolist', 'numpy', 'cpu', '__array__', '__format__', 'tensor', 'as_tensor', 'from_numpy'}

def _host_syncs(day) -> dict:
    "Host syncs per training batch of a seed000 learner (GPU: CUDA's sync debug mode; CPU: host reads, counted as nbs/09 counts them), dynblocks' recorder and fastai's"
    import collections, traceback, warnings
    from torch.overrides import TorchFunctionMode
    from fastai.callback.core import Callback
    from dynblocks.data import cifar10_dls
    from dynblocks.learner import dyn_learner
    class Reads(TorchFunctionMode):
        def __init__(self): super().__init__(); self.on, self.seen = False, collections.Counter()
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if self.on and getattr(func, '__name__', '') in _HOST:
                st = traceback.extract_stack()[:-1]
                if not any('/torch/optim/' in f.filename for f in st): self.seen[f"{st[-1].filename.split('/')[-1]}:{st[-1].lineno}"] += 1
            return func(*args, **(kwargs or {}))
    res, r = {}, day.recipes['seed000']
    for name, dm in (('dyn_learner', True), ('fastai_recorder', False)):
        mode = Reads()
        class Window(Callback):
            order = -100  # closes before StopOnNanLoss's read at the end of training
            def before_train(self):
                if day.gpu: torch.cuda.synchronize(); torch.cuda.set_sync_debug_mode(1)
                mode.on = not day.gpu
            def after_train(self):
                if day.gpu: torch.cuda.set_sync_debug_mode(0)
                mode.on = False
        dls = cifar10_dls(day.data, bs=32, aug=r.aug, stats=r.stats, n_train=320 if day.gpu else 160, n_valid=50, device=day.dev, seed=0)
        learn = dyn_learner(dls, recipe=r, model_kw=dict(width=0.25 if day.gpu else 0.125), seed=0, cbs=[Window()], device_metrics=dm, cpu_note=False,
                            precision=r.precision if day.gpu else None)
        with warnings.catch_warnings(record=True) as w, mode, learn.no_bar(), learn.no_logging():
            warnings.simplefilter('always')
            learn.fit(1, 1e-3)
        where = collections.Counter(f"{Path(o.filename).name}:{o.lineno}" for o in w if 'synchroniz' in str(o.message)) if day.gpu else mode.seen
        n = len(learn.dls.train)
        res[name] = dict(per_batch=sum(where.values())/n, total=sum(where.values()), batches=n, where=dict(where.most_common(8)),
                         how='CUDA sync debug mode' if day.gpu else 'host reads and host-made tensors (TorchFunctionMode)')
    if day.gpu: torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = True, False
    return res

def _fresh(gpu_dir:Path) -> str|None:
    "Why step 2 cannot run here (step 1's wheels or shard a missing: the warm machine went back), or None"
    a_there = all((gpu_dir/'data'/'cifar-10-batches-py'/f).exists() for f in ('data_batch_1', 'data_batch_2', 'data_batch_3', 'batches.meta'))
    if a_there and not (_python_here_is_the_gpus() and not (gpu_dir/'site').exists()): return None
    return (f"fresh machine: no {'wheels in .gpu/site' if a_there else 'shard a in .gpu/data'} (the warm machine went back after "
            "step 1): run step 1 again, then step 2 with a smaller --budget")

def phase_checks(day, d) -> dict:
    from dynblocks.block import DynBlock, check_impls, impl_sweep
    from dynblocks.models import list_models, create_model
    from dynblocks.cifar import load_cifar10
    res = dict(cuda=dict(available=torch.cuda.is_available(), device=str(day.dev)))
    if day.gpu:
        p = torch.cuda.get_device_properties(day.dev)
        res['cuda'].update(name=p.name, memory_gib=p.total_memory/2**30, sms=p.multi_processor_count)
    # the data: shard b unpacked and checked next to shard a's batches
    t = time.time()
    tool = day.gpu_dir/'cifar_shards.py'
    rb = subprocess.run([sys.executable, str(tool), 'unpack', str(day.gpu_dir/'cifar10_shard_b.pkl'), str(day.data_dir)], capture_output=True, text=True)
    rc = subprocess.run([sys.executable, str(tool), 'check', str(day.data_dir)], capture_output=True, text=True)
    if rb.returncode or rc.returncode: raise RuntimeError(f"shard b: {rb.stdout[-500:]}{rb.stderr[-500:]}{rc.stdout}{rc.stderr}")
    day.data = load_cifar10(day.data_dir, download=False)
    res['data'] = dict(train=len(day.data['train'][1]), test=len(day.data['test'][1]), unpack_and_load_s=time.time() - t)
    say(f"data: {res['data']}")
    res['peak'] = _peak(day); say(f"matrix product: {res['peak']['tflops']:.2f} TFLOP/s ({res['peak']['dtype']})")
    # reference, fused and aggregate on the device: equal in fp32 (TF32 off); in bf16 as close to the fp32 result as reference is
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    rows = []
    torch.manual_seed(0)
    try:
        for kw in impl_sweep():
            for train in (True, False):
                if train and kw.get('drop', 0): continue  # dropout draws differ between implementations
                blk = _rand_block(DynBlock(6, 8, **kw)).to(day.dev)
                x = torch.randn(5, 6, 10, 10, device=day.dev)
                diffs, scale = check_impls(blk, x, train=train), _ref_scale(blk, x, train)
                rel = {i: {k: v/max(scale[k], 1e-6) for k, v in dd.items()} for i, dd in diffs.items()}
                worst = max(v for dd in rel.values() for v in dd.values())
                rows.append(dict(block=repr(kw), train=train, dtype='fp32', abs=diffs, rel=rel, worst=worst, ok=worst <= TOL['fp32']))
                errs = _bf16_errors(blk, x, train, ['reference'] + list(diffs))
                ratio = {i: {k: v/max(errs['reference'][k], TOL['bf16']/2) for k, v in e.items()} for i, e in errs.items() if i != 'reference'}
                worst = max(v for e in ratio.values() for v in e.values())
                rows.append(dict(block=repr(kw), train=train, dtype='bf16', err_vs_fp32=errs, ratio=ratio, worst=worst, ok=worst <= 2))
    finally: torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    res['impls'] = rows
    res['tolerance'] = dict(fp32=TOL['fp32'], bf16=TOL['bf16'], note=(
        "fp32 (TF32 off): largest |impl - reference| over outputs, input and parameter gradients and BN statistics, relative to "
        f"the reference's largest magnitude, at most {TOL['fp32']:g}. bf16 autocast: each implementation's norm-relative error "
        "(||a - b|| / ||b||) against the fp32 reference, for the output, the input gradient and the parameter gradients, at most "
        f"twice the reference implementation's own bf16 error, or {TOL['bf16']:g}, whichever is larger"))
    res['impls_ok'] = all(r['ok'] for r in rows)
    for dt in TOL:
        w = max(r['worst'] for r in rows if r['dtype'] == dt)
        say(f"impls {dt}: worst {'relative difference' if dt == 'fp32' else 'error ratio to reference'} {w:.3g} "
            f"(at most {TOL['fp32'] if dt == 'fp32' else 2}) over {sum(r['dtype'] == dt for r in rows)} cases")
    # one training step of every preset (bf16 autocast and channels_last on a GPU)
    pres = {}
    for name in list_models():
        t = time.time()
        m = create_model(name, **day.model_kw).to(day.dev, memory_format=torch.channels_last)
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
        x = torch.randn(8, 3, 32, 32, device=day.dev).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (8,), device=day.dev)
        with _amp(day): loss = torch.nn.functional.cross_entropy(m(x).float(), y)
        loss.backward(); opt.step()
        fin = bool(torch.isfinite(loss)) and all(torch.isfinite(p).all() for p in m.parameters())
        pres[name] = dict(loss=loss.item(), finite=fin, s=time.time() - t)
    res['presets'] = pres
    say('one step: ' + ', '.join(f"{k} {'ok' if v['finite'] else 'NOT FINITE'}" for k, v in pres.items()))
    res['host_syncs'] = _host_syncs(day)
    say('host syncs per training batch: ' + ', '.join(f"{k} {v['per_batch']:.2f}" for k, v in res['host_syncs'].items()))
    # none per batch: at most the epoch's one copy of the shuffled order to the device (DeviceDL), and one to spare
    res['ok'] = res['impls_ok'] and all(v['finite'] for v in pres.values()) and res['host_syncs']['dyn_learner']['total'] <= 2
    return res

def _rate(step, dev, seconds:float) -> dict:
    "Steps per second of `step` run back to back for about `seconds` (after 3 warm-up steps), one clock read at each end"
    for _ in range(3): step()
    _sync(dev); t = time.perf_counter(); step(); _sync(dev); one = time.perf_counter() - t
    n = int(min(200, max(3, seconds/max(one, 1e-6))))
    _sync(dev); t = time.perf_counter()
    for _ in range(n): step()
    _sync(dev)
    return dict(steps=n, step_s=(time.perf_counter() - t)/n)

def phase_throughput(day, d) -> dict:
    from dynblocks.models import list_models, create_model
    from dynblocks.learner import _flops
    secs = day.A['throughput_seconds'] if day.gpu else 0.2
    budget = day.a.compile_budget if day.gpu else 0.  # the rehearsal compiles the first preset only (eager backend)
    backend = 'inductor' if day.gpu else 'eager'
    peak = day.results.get('checks', {}).get('peak', {}).get('tflops')
    bss, order = preset_bs(day.smoke), compile_order(day.recipes)
    rows, spent = {}, 0.
    for name in list_models():
        rows[name] = dict(bs=bss[name], dtype='bf16' if day.gpu else 'fp32', channels_last=True,
                          fwd_flops=_flops(name, 32, **day.model_kw))
    for name in order:
        for comp in (False, True):
            row = rows[name]
            if comp and spent > budget:
                row['compiled'] = dict(skipped=f'compile budget of {budget:.0f} s spent'); continue
            torch.manual_seed(0)
            bs, t, tc = row['bs'], time.time(), None
            try:
                m = create_model(name, **day.model_kw).to(day.dev, memory_format=torch.channels_last)
                opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, nesterov=True)
                f = torch.compile(m, backend=backend) if comp else m
                x = torch.randn(bs, 3, 32, 32, device=day.dev).contiguous(memory_format=torch.channels_last)
                y = torch.randint(0, 10, (bs,), device=day.dev)
                def step():
                    with _amp(day): loss = torch.nn.functional.cross_entropy(f(x).float(), y)
                    opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
                if comp:
                    step(); step(); _sync(day.dev)  # compiles forward and backward
                    tc = time.time() - t
                r = _rate(step, day.dev, secs)
            except Exception as e:  # one preset's failure (a compiler error, memory) costs its row, not the phase
                r = dict(error=f'{type(e).__name__}: {str(e)[:500]}')
                say(f"{name:<11} bs {bs:<5} {'compiled' if comp else 'eager   '} FAILED: {r['error'][:200]}")
            finally:
                if comp: spent += time.time() - t
            row['compiled' if comp else 'eager'] = r
            if 'error' in r: continue
            r['img_s'] = bs/r['step_s']
            r['train_tflops'] = 3*row['fwd_flops']*r['img_s']/1e12
            if peak and day.gpu: r['mfu'] = r['train_tflops']/peak
            if comp: r['compile_s'], r['backend'] = tc, backend
            say(f"{name:<11} bs {bs:<5} {'compiled' if comp else 'eager   '} {r['img_s']:>10.0f} img/s"
                + (f"  compile {r['compile_s']:.1f} s" if comp else '') + (f"  MFU {r['mfu']*100:.1f} %" if 'mfu' in r else ''))
            del m, opt, f
            if day.gpu: torch.cuda.empty_cache()
    day.throughput = rows
    return dict(presets=rows, compile_budget_s=budget, compile_spent_s=spent, seconds_each=secs, backend=backend,
                peak_tflops=peak, note='one nesterov-SGD step per batch on random data (no data loading, no fastai loop)')

def _run_estimate(day, r, row:dict, compiled:bool) -> float:
    "Seconds of recipe run `r` from its preset's measured images/s, plus the assumed host time of the fastai loop per batch"
    from dynblocks.reports import recipe_flops
    from dynblocks.reports import gpu_seconds
    m = (row or {}).get('compiled' if compiled else 'eager') or {}
    kw = dict(n_train=len(day.data['train'][1]), n_valid=len(day.data['test'][1]), **day.model_kw)
    if 'img_s' not in m:  # not measured: compiled runs are out, eager ones come from the FLOP count and the assumptions
        if compiled or not day.gpu: return math.inf
        peak = day.results.get('checks', {}).get('peak', {}).get('tflops') or day.A['peak_bf16_tflops']
        return gpu_seconds(r, peak, day.A['mfu'], day.A['batch_s'], day.A['valid_batch_s'], **kw) + day.A['run_setup_s']
    c = recipe_flops(r, **kw)
    per_img = 1/m['img_s']  # a training image (forward and backward); a validation image costs a third of it
    train = c['train_batches']*(r.bs*per_img + day.A['loop_batch_s'])
    valid = c['valid_flops']/c['fwd_flops']*per_img/3 + c['valid_batches']*day.A['valid_batch_s']
    return train + valid + day.A['run_setup_s'] + (day.A['compile_run_s'] if compiled else 0)

def _fast94_reserve(day) -> float:
    row = day.throughput.get(day.recipes['fast94'].arch)
    one = min(_run_estimate(day, day.recipes['fast94'], row, False), 120.)
    if not day.gpu: return 2*one  # a warm-up and one run; no airbench
    return (day.a.runs + 1)*one + (day.A['airbench_runs'] + 1)*day.A['airbench_run_s'] + day.A['fast94_setup_s']

def phase_plan(day, d) -> dict:
    left = day.left() - day.A['margin_s']*(1 if day.gpu else 0.1)
    reserve = _fast94_reserve(day)
    cands = []
    for k in REPORTS:
        r = day.recipes[k]; row = day.throughput.get(r.arch)
        e = _run_estimate(day, r, row, False); c = _run_estimate(day, r, row, True)
        use_c = day.a.compile_runs and (c < 0.9*e or (day.smoke and c < math.inf))  # where it saves a tenth (a rehearsal: always)
        cands.append(dict(recipe=k, arch=r.arch, epochs=r.epochs, eager_s=e, compiled_s=c, compile=use_c, expected_s=min(e, c) if use_c else e))
    room = left - reserve
    chosen = next((c for c in cands if c['expected_s'] <= room), None)
    why = _why(cands, chosen, room)
    say(f"left {left:.0f} s, fast94 reserve {reserve:.0f} s: " + ', '.join(f"{c['recipe']} {c['expected_s']:.0f} s" for c in cands))
    say(f"chosen: {chosen and chosen['recipe']} ({why})")
    day.plan = dict(chosen=chosen and chosen['recipe'], compile=bool(chosen and chosen['compile']), expected_s=chosen and chosen['expected_s'])
    flops = flop_plan(day.a.budget, day.A) if day.gpu else None
    return dict(left_s=left, fast94_reserve_s=reserve, candidates=cands, chosen=day.plan['chosen'], why=why,
                compile=day.plan['compile'], flop_plan=flops)

def _accuracies(learn, tta:bool) -> dict:
    "Accuracy on the test images 0-999 (exact) and 1000-9999 (JPEG copies), with flip TTA if asked"
    dl = learn.dls.valid.new(shuffle=False, drop_last=False)
    with learn.no_bar(): preds, targs = learn.flip_tta(dl=dl) if tta else learn.get_preds(dl=dl)
    ok = (preds.argmax(1) == targs).float()
    return dict(acc_exact1000=float(ok[:EXACT].mean()), acc_jpeg9000=float(ok[EXACT:].mean()) if len(ok) > EXACT else None,
                n_exact=min(len(ok), EXACT), n_jpeg=max(0, len(ok) - EXACT), tta=tta)

def _train(day, r, seed:int, compiled:bool, stop_at:float, on_epoch=None, epochs=None) -> dict:
    "One run of recipe `r` with dynblocks' `dyn_learner` (bf16 and channels_last on a GPU), stopped before `stop_at` (a time)"
    from fastai.callback.core import Callback, CancelFitException
    from dynblocks.data import cifar10_dls
    from dynblocks.learner import dyn_learner
    t0 = time.time()
    dls = cifar10_dls(day.data, bs=r.bs, aug=r.aug, stats=r.stats, n_train=r.n_train, device=day.dev, seed=seed)
    dls.loaders[1] = dls.valid.new(bs=1000 if day.gpu else 100)  # 10,000 test images in whole batches: one compiled shape
    clock = dict(epochs=[])
    class _Clock(Callback):
        "After each epoch of the fit: time, validation figures, the JSON so far; stop when the next epoch would pass `stop_at`"
        order, in_fit = 95, False
        def before_train(self):
            if not self.in_fit: self.in_fit, self.t = True, time.time()
        def after_fit(self): self.in_fit = False  # `get_preds` sends `after_epoch` too: only the fit's epochs count
        def after_epoch(self):
            if not self.in_fit: return
            now = time.time(); v = self.recorder.values[-1] if self.recorder.values else []
            clock['epochs'].append(dict(epoch=self.epoch, end_s=now - self.t, **dict(zip(self.recorder.metric_names[1:-1], map(float, v)))))
            if on_epoch: on_epoch(clock)
            per = (now - self.t)/(self.epoch + 1)
            if self.epoch + 1 < self.n_epoch and now + 1.2*per > stop_at:
                clock['cut_short'] = f"stopped after epoch {self.epoch}: the next would pass the deadline"; raise CancelFitException()
    learn = dyn_learner(dls, recipe=r, seed=seed, model_kw=day.model_kw or None, cbs=[_Clock()], cpu_note=False,
                        precision=r.precision if day.gpu else None)
    if day.gpu: torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = True, False  # set_seed(reproducible) turned them off
    if compiled: learn.model = torch.compile(learn.model, backend='inductor' if day.gpu else 'eager')
    setup = time.time() - t0
    _sync(day.dev); t = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_recipe(epochs=epochs)
    _sync(day.dev); wall = time.perf_counter() - t
    acc = _accuracies(learn, tta=r.tta == 'flip')
    return dict(seed=seed, compiled=compiled, setup_s=setup, wall_s=wall, epochs_done=len(clock['epochs']), history=clock['epochs'],
                cut_short=clock.get('cut_short'), cudnn_benchmark=torch.backends.cudnn.benchmark,
                callbacks=[type(c).__name__ for c in learn.cbs], **acc)

def phase_report_run(day, d) -> dict:
    from dynblocks.reports import report_info
    k = day.plan['chosen']
    if k is None: return dict(recipe=None, epochs_done=0, history=[], wall_s=0, acc_exact1000=None, acc_jpeg9000=None,
                              report_acc=None, skipped='no report recipe fits the time left (plan.json)')
    r = day.recipes[k]
    stop_at = day.deadline - 0.5*(_fast94_reserve(day) + day.A['margin_s'])  # a safety net: the plan chose a run that fits
    base = dict(recipe=dataclasses.asdict(r), name=k, report_acc=report_info(k)['figures']['test_acc'], expected_s=day.plan['expected_s'])
    def progress(clock): _write(day.out, 'report_run.json', {**d, **base, 'status': 'running', 'epochs_done': len(clock['epochs']),
                                                              'history': clock['epochs'], 'elapsed_s': time.time() - t})
    t = time.time()
    try: res = _train(day, r, seed=0, compiled=day.plan['compile'], stop_at=stop_at, on_epoch=progress)
    except Exception as e:
        if not day.plan['compile']: raise
        err = f'{type(e).__name__}: {str(e)[:500]}'
        say(f"compiled run failed ({err[:200]}): again, eager"); t = time.time()
        res = _train(day, r, seed=0, compiled=False, stop_at=stop_at, on_epoch=progress)
        res['compile_error'] = err
    say(f"{k}: {res['epochs_done']} of {r.epochs} epochs in {res['wall_s']:.0f} s (expected {day.plan['expected_s']:.0f}): "
        f"{res['acc_exact1000']*100:.2f} % on test 0-999, {(res['acc_jpeg9000'] or 0)*100:.2f} % on 1000-9999 (report: {base['report_acc']} %)")
    return {**base, **res, 'status': 'done' if not res['cut_short'] else 'cut short', 'ok': True}

def _write_airbench_data(data:dict, dest:Path):
    "airbench's `train.pt` and `test.pt` from our arrays (uint8 NHWC images, int labels, class names)"
    dest.mkdir(parents=True, exist_ok=True)
    for split in ('train', 'test'):
        x, y = data[split]
        torch.save(dict(images=torch.from_numpy(x), labels=torch.from_numpy(y), classes=list(data['classes'])), dest/f'{split}.pt')

def _airbench(day, runs:int, stop_at:float) -> dict:
    if not day.gpu: return dict(status='not available: airbench trains on CUDA only', runs=[])
    if day.site.exists() and str(day.site) not in sys.path: sys.path.insert(0, str(day.site))
    try: import airbench
    except Exception as e: return dict(status=f'not available: {type(e).__name__}: {e}', runs=[])
    home = day.gpu_dir/'airbench'
    _write_airbench_data(day.data, home/'cifar10')
    cwd = os.getcwd(); os.chdir(home)  # airbench reads ./cifar10/{train,test}.pt
    try:
        test_loader = airbench.CifarLoader('cifar10', train=False, batch_size=1000)
        t = time.time(); airbench.warmup94(verbose=False); warm = time.time() - t
        rows = []
        for i in range(runs):
            if time.time() + 2*warm > stop_at: break
            torch.cuda.synchronize(); t = time.perf_counter()
            model = airbench.train94(run=i, verbose=False)
            torch.cuda.synchronize(); wall = time.perf_counter() - t
            ok = (airbench.infer(model, test_loader, tta_level=2).argmax(1) == test_loader.labels).float()
            rows.append(dict(run=i, wall_s=wall, acc_exact1000=float(ok[:EXACT].mean()), acc_jpeg9000=float(ok[EXACT:].mean())))
            say(f"airbench94 run {i}: {wall:.2f} s, {rows[-1]['acc_exact1000']*100:.2f} % (0-999), {rows[-1]['acc_jpeg9000']*100:.2f} % (1000-9999)")
    finally: os.chdir(cwd)
    return dict(status='ran', version=getattr(airbench, '__version__', '0.1.8'), warmup_s=warm, runs=rows, **_mean(rows))

def _mean(rows):
    if not rows: return {}
    m = lambda k: sum(o[k] for o in rows)/len(rows)
    return dict(wall_mean=m('wall_s'), acc_exact1000_mean=m('acc_exact1000'),
                acc_jpeg9000_mean=m('acc_jpeg9000') if all(o.get('acc_jpeg9000') is not None for o in rows) else None)

def phase_fast94(day, d) -> dict:
    r = day.recipes['fast94']
    stop_at = day.deadline - day.A['margin_s']*(0.5 if day.gpu else 0.05)
    warm = _train(day, r, seed=123, compiled=False, stop_at=stop_at, epochs=1)  # cuDNN autotuning, caches: not counted
    rows = []
    for i in range(day.a.runs if day.gpu else 1):
        if i and time.time() + 1.5*rows[-1]['wall_s'] > stop_at - (day.A['airbench_runs'] + 1)*day.A['airbench_run_s']: break
        rows.append(_train(day, r, seed=i, compiled=False, stop_at=stop_at))
        say(f"fast94 run {i}: {rows[-1]['wall_s']:.1f} s, {rows[-1]['acc_exact1000']*100:.2f} % (0-999)")
    ab = _airbench(day, day.A['airbench_runs'], stop_at)
    if ab['status'] != 'ran': say(f"airbench94: {ab['status']}")
    s = _mean(rows)
    t94 = s['wall_mean'] if s.get('acc_exact1000_mean', 0) >= 0.94 else None
    return dict(recipe=dataclasses.asdict(r), warmup_s=warm['wall_s'], runs=rows, **s, airbench94=ab,
                time_to_94=dict(fast94=t94, airbench94=ab.get('wall_mean') if ab.get('acc_exact1000_mean', 0) >= 0.94 else None,
                                note='mean wall time of runs whose mean accuracy on test 0-999 reaches 94 % (None: it does not)'),
                time_ratio=(s['wall_mean']/ab['wall_mean']) if ab.get('wall_mean') else None)

def phase_summary(day, d) -> dict:
    R = day.results
    rr, f9 = R.get('report_run', {}), R.get('fast94', {})
    res = dict(report_run={k: rr.get(k) for k in ('name', 'status', 'epochs_done', 'wall_s', 'expected_s', 'acc_exact1000',
                                                   'acc_jpeg9000', 'report_acc', 'compiled', 'cut_short')},
               fast94={k: f9.get(k) for k in ('wall_mean', 'acc_exact1000_mean', 'acc_jpeg9000_mean', 'time_to_94', 'time_ratio')},
               airbench94={k: (f9.get('airbench94') or {}).get(k) for k in ('status', 'wall_mean', 'acc_exact1000_mean', 'acc_jpeg9000_mean')},
               throughput={k: dict(bs=v['bs'], eager_img_s=v.get('eager', {}).get('img_s'), compiled_img_s=v.get('compiled', {}).get('img_s'),
                                   compile_s=v.get('compiled', {}).get('compile_s'), mfu=v.get('eager', {}).get('mfu'))
                           for k, v in R.get('throughput', {}).get('presets', {}).items()},
               impls_ok=R.get('checks', {}).get('impls_ok'), peak_tflops=R.get('checks', {}).get('peak', {}).get('tflops'))
    return dict(phases=day.phases, results=res, all_ok=day.ok, budget_s=day.a.budget, step2_s=time.time() - day.t0,
                files=[f for f in FILES if f != 'step1.json'])

def step2(a, gpu_dir:Path, out:Path) -> int:
    why = _fresh(gpu_dir)
    if why:
        say(why); _write(out, 'checks.json', dict(phase='checks', ok=False, error=why, machine=machine(), command=' '.join(sys.argv)))
        return 2
    if _python_here_is_the_gpus(): sys.path.insert(0, str(gpu_dir/'site'))
    day = Day(a, gpu_dir, out)
    if day.gpu: torch.backends.cudnn.benchmark = True
    E = day.A
    day.phase('checks', lambda d: phase_checks(day, d), E['stage_s'] + E['checks_s'])
    if 'data' not in day.__dict__:  # no data: nothing else can run
        day.phase('summary', lambda d: phase_summary(day, d)); return 2
    day.phase('throughput', lambda d: phase_throughput(day, d))
    if getattr(day, 'throughput', None) is None: day.throughput = {}
    day.phase('plan', lambda d: phase_plan(day, d), E['plan_s'])
    if getattr(day, 'plan', None) is None: day.plan = dict(chosen=None, compile=False, expected_s=None)
    day.phase('report_run', lambda d: phase_report_run(day, d), day.plan['expected_s'])
    day.phase('fast94', lambda d: phase_fast94(day, d))
    s = day.phase('summary', lambda d: phase_summary(day, d))
    say(f"\nstep 2 {'ok' if day.ok else 'FAILED'} in {time.time() - day.t0:.0f} s of {a.budget:.0f}; files in {out}: "
        + ', '.join(sorted(p.name for p in out.iterdir() if not p.name.startswith('.'))))
    return 0 if day.ok else 1


def day_cmd(a) -> int:
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    gpu_dir = Path(a.gpu_dir) if a.gpu_dir else GPU_DIR
    tmp = None
    if a.smoke and not a.gpu_dir:  # the rehearsal prepares its own folder: mini shards, the wheels, the tool
        tmp = tempfile.TemporaryDirectory(); gpu_dir = Path(tmp.name)
        t = time.time(); prepare(gpu_dir, Path(a.shared), mini=True, show=False)
        say(f"rehearsal: mini shards and wheels prepared in {gpu_dir} in {time.time() - t:.1f} s")
    log = open(out/'log.txt', 'a')
    so, se = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Tee(so, log), _Tee(se, log)
    try:
        rc = 0
        if a.step in (None, 1): rc = step1(a, gpu_dir, out)
        if a.step in (None, 2) and rc == 0: rc = step2(a, gpu_dir, out)
        return rc
    finally:
        sys.stdout, sys.stderr = so, se; log.close()
        if tmp: tmp.cleanup()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest='what', required=True)
    pp = sub.add_parser('prepare', help='make .gpu/ (shards, wheels, shard tool), check sizes, print the plan and the two run calls')
    pp.add_argument('--shared', default=str(SHARED)); pp.add_argument('--repack', action='store_true')
    pp.add_argument('--no-download', dest='download', action='store_false', help="don't fetch airbench's sdist from PyPI")
    pp.add_argument('--budget', type=float, default=BUDGET)
    pl = sub.add_parser('plan', help="print the H200 plan from FLOP counts and bench/results/gpu-assumptions.json")
    pl.add_argument('--budget', type=float, default=BUDGET)
    pd = sub.add_parser('day', help='the GPU day (or its CPU rehearsal with --device cpu --smoke)')
    pd.add_argument('--step', type=int, choices=[1, 2], default=None, help='1: wheels + shard a; 2: shard b + the phases; none: both')
    pd.add_argument('--out', required=True, help='folder for the JSON files and log.txt ($OUT on the GPU machine)')
    pd.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    pd.add_argument('--smoke', action='store_true', help='rehearsal: mini shards, one epoch, a quarter of the channels')
    pd.add_argument('--budget', type=float, default=None, help=f'seconds for step 2 (default {BUDGET}; 150 for --smoke)')
    pd.add_argument('--runs', type=int, default=None, help='fast94 runs after its warm-up, time permitting (default: the assumptions\' fast94_runs)')
    pd.add_argument('--compile-budget', type=float, default=None, help='seconds of torch.compile in the throughput phase')
    pd.add_argument('--no-compile-runs', dest='compile_runs', action='store_false', help='never train compiled')
    pd.add_argument('--gpu-dir', default=None, help='default: .gpu (a temporary folder for --smoke)')
    pd.add_argument('--shared', default=str(SHARED), help='for --smoke: ../shared with gpu/ and data/')
    a = p.parse_args(argv)
    if a.what == 'prepare':
        prepare(shared=Path(a.shared), download=a.download, repack=a.repack, budget=a.budget); return 0
    if a.what == 'plan':
        print_plan(flop_plan(a.budget)); return 0
    if a.budget is None: a.budget = 150. if a.smoke else BUDGET
    if a.compile_budget is None: a.compile_budget = assumptions()['compile_budget_s']
    if a.runs is None: a.runs = assumptions()['fast94_runs']
    if a.device.startswith('cuda') and not torch.cuda.is_available(): raise SystemExit('CUDA is not available here: --device cpu --smoke rehearses.')
    return day_cmd(a)

if __name__ == '__main__': sys.exit(main())
