"""How fast the command line answers: `dynblocks --help`, a command's --help and `dynblocks predict`, beside `import torch`.

    python bench/startup.py [--repeats 5] [--out FILE]

Each command is a whole process, as a user starts it (`python -m` is not used: the `dynblocks` entry point of the
venv), timed from `fork` to exit: one untimed run first (the disk cache), then `--repeats` timed ones; the JSON keeps
every time, the median and the range, the machine (CPU model, threads), the load around the runs and the other
processes' CPU use. `dynblocks predict` runs on a tiny run folder trained first (its model.json + model.safetensors:
torch and the model's code, no fastai) and on its `model.onnx` (onnxruntime, NumPy and Pillow: no torch). The
reference beside them is `python -c "import torch"` in the same run, and `import fastai.vision.all` (what every
command paid before). Run it on an idle machine: it waits for one.
"""
from __future__ import annotations
import argparse, json, statistics, subprocess, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from bench import machine, RESULTS, wait_for_idle  # noqa: E402
from dynblocks.measure import LoadMeter  # noqa: E402

EXE = Path(sys.executable).parent/'dynblocks'

def timed(cmd:list, repeats:int) -> dict:
    "Wall seconds of the process `cmd`: one untimed run, then `repeats` timed ones"
    def once():
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode: raise SystemExit(f"{' '.join(map(str, cmd))} failed: {r.stderr[-500:]}")
        return time.perf_counter() - t
    once()
    ts = [once() for _ in range(repeats)]
    return dict(times_s=[round(t, 4) for t in ts], median_s=round(statistics.median(ts), 4), min_s=round(min(ts), 4), max_s=round(max(ts), 4))

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--max-other', type=float, default=0.05, help='other processes\' cores above which the run is marked loaded')
    p.add_argument('--out', default=None)
    a = p.parse_args(argv)
    m = machine()
    out = Path(a.out or RESULTS/f"startup-cpu-{m['date']}.json")
    with tempfile.TemporaryDirectory() as d:
        run = Path(d)/'run'
        subprocess.run([str(EXE), 'train', '--data', 'sample', '--epochs', '1', '--n-train', '200', '--width', '0.25', '--quiet',
                        '--out', str(run)], check=True, capture_output=True)
        subprocess.run([str(EXE), 'export', str(run), '--onnx'], check=True, capture_output=True)
        from dynblocks.cifar import sample_path
        img = str(sorted(sample_path().rglob('*.png'))[0])
        cmds = {  # name: (command, what it stands for)
            'import torch': [sys.executable, '-c', 'import torch'],
            'import fastai.vision.all': [sys.executable, '-c', 'import fastai.vision.all'],
            'dynblocks --help': [str(EXE), '--help'],
            'dynblocks train --help': [str(EXE), 'train', '--help'],
            'dynblocks predict RUN IMAGE': [str(EXE), 'predict', str(run), img],
            'dynblocks predict RUN/model.onnx IMAGE': [str(EXE), 'predict', str(run/'model.onnx'), img],
        }
        wait_for_idle(a.max_other)
        with LoadMeter(a.max_other) as lm: rows = {name: timed(cmd, a.repeats) for name, cmd in cmds.items()}
        load = lm.record
    res = dict(what='startup', command='python bench/startup.py ' + ' '.join(argv if argv is not None else sys.argv[1:]),
               machine=m, repeats=a.repeats, results=rows, **load,
               note='whole processes, fork to exit; the first run of each command untimed (disk cache)')
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + '\n')
    w = max(map(len, rows))
    for k, v in rows.items(): print(f"{k:<{w}}  {v['median_s']:.3f} s  ({v['min_s']:.3f}-{v['max_s']:.3f})")
    print(f"load {load['load_before']} -> {load['load_after']}, other cores {load['other_cores']}{' (loaded: rerun)' if load['loaded'] else ''}; {out}")
    return res

if __name__ == '__main__': main()
