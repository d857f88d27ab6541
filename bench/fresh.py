"""The README's first command on a fresh clone, timed as a new user meets it: `bash dev.sh train` (install, then the main job).

    python bench/fresh.py [--runs 1] [--out FILE]

Clones this repository's HEAD into a temporary folder (no `.venv`), runs `bash dev.sh train` there exactly as the
README says, without DYNBLOCKS_DATA (so the main job trains on the sample shipped inside dynblocks, as it does for a
user without CIFAR-10) and without pip's cache (`PIP_NO_CACHE_DIR=1`: a new machine has none; packages come from the
registry, torch from this machine's disk as the README's setup says). It records the whole command's seconds, the
install's (dev.sh's own line), the run's (from the run folder's summary.json: seconds, passes, images/s), the test
accuracy it printed, the exit code, the machine (CPU model, threads) and the load around it. Run it on an idle machine.
"""
from __future__ import annotations
import argparse, json, os, re, statistics, subprocess, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from bench import RESULTS  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def one(repo:Path) -> dict:
    "Clone, then `bash dev.sh train` in the clone: its figures"
    from dynblocks.measure import LoadMeter
    with tempfile.TemporaryDirectory() as d:
        clone = Path(d)/'dynblocks'
        subprocess.run(['git', 'clone', '-q', str(repo), str(clone)], check=True)
        env = {k: v for k, v in os.environ.items() if k not in ('DYNBLOCKS_DATA', 'VIRTUAL_ENV')}
        env.update(PIP_NO_CACHE_DIR='1', PATH=':'.join(p for p in os.environ['PATH'].split(':') if '.venv' not in p))
        with LoadMeter(0.05) as lm:
            t = time.time()
            r = subprocess.run(['bash', 'dev.sh', 'train'], cwd=clone, capture_output=True, text=True, env=env, timeout=3600)
            wall = time.time() - t
        out = r.stdout + r.stderr
        inst = re.search(r'dev\.sh: installed \(base\) in (\d+) s', out)
        acc = re.search(r'^test accuracy: ([\d.]+) %', r.stdout, re.M)
        summ = sorted(clone.glob('runs/*/summary.json'))
        s = json.loads(summ[-1].read_text()) if summ else {}
    return dict(returncode=r.returncode, wall_s=round(wall, 1), install_s=int(inst[1]) if inst else None,
                test_acc=float(acc[1])/100 if acc else None, run_s=s.get('run_s'), epochs=s.get('epochs'), images_per_s=s.get('images_per_s'),
                budget=(s.get('budget') or {}).get('seconds'), data=s.get('data'), tail=out.strip().splitlines()[-3:], **lm.record)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--runs', type=int, default=1)
    p.add_argument('--out', default=None)
    a = p.parse_args(argv)
    from dynblocks.measure import machine, wait_for_idle
    m = machine()
    head = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    runs = []
    for _ in range(a.runs):
        wait_for_idle(0.05)
        runs.append(one(ROOT)); print(json.dumps(runs[-1]), flush=True)
    ok = [r for r in runs if r['returncode'] == 0 and not r['loaded']]
    res = dict(what='fresh', command='python bench/fresh.py ' + ' '.join(argv if argv is not None else sys.argv[1:]), commit=head,
               machine=m, runs=runs, note="a fresh clone with no .venv and no pip cache; bash dev.sh train as the README says",
               summary=None if not ok else dict(n=len(ok), wall_s=statistics.median(r['wall_s'] for r in ok),
                                                install_s=statistics.median(r['install_s'] for r in ok),
                                                test_acc=statistics.median(r['test_acc'] for r in ok),
                                                images_per_s=statistics.median(r['images_per_s'] for r in ok)))
    out = Path(a.out or RESULTS/f"fresh-cpu-{m['date']}.json")
    out.write_text(json.dumps(res, indent=1) + '\n')
    print(out)
    return res


if __name__ == '__main__': main()
