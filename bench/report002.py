"""Report 002 (SE-ResNet, 84.1 %) measured on a CPU: its whole recipe, and its own search at the fidelity a CPU allows.

    python bench/report002.py score RUN [--load LOG] [--start FILE --end FILE]   # a finished `dynblocks train --recipe seed002` run
    python bench/report002.py tune STORAGE --study NAME --command "..."           # the Optuna study of `dynblocks tune --space seed002`
    python bench/report002.py readings --data DIR [--n-train 10000 --epochs 3]    # short runs of each reading of the report's contradictions

`score` reads a run folder of `dynblocks train --recipe seed002 --data DIR --out RUN` (20 epochs of all 50,000
training images, batch 16, the preset's optimiser and schedule), scores its safe model files on the test set of
`DIR` (no TTA, as the report) apart on the exact images 0-999 and the JPEG copies 1000-9999 and on all 10,000, and
adds the run to `bench/results/seed002-cpu.json` with its per-epoch curve, seconds, images/s, the machine and the
load during the run (`--load`: lines of `time load1 load5 load15 ...` logged beside it). The run's accuracy does not
depend on the load (a seeded run), its seconds do: the load is recorded, not used to drop the run.
`tune` writes the trials of the reduced-fidelity search (`seed002-tune-cpu.json`): each trial's parameters,
validation loss after each epoch, state and seconds, and where the report's own choice (Adam, lr 3.7e-4, batch 16) falls.
"""
from __future__ import annotations
import argparse, csv, json, statistics, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from bench import RESULTS  # noqa: E402

OUT, TUNE, READ = RESULTS/'seed002-cpu.json', RESULTS/'seed002-tune-cpu.json', RESULTS/'seed002-readings-cpu.json'

READINGS = {  # the report's contradictions, each read one way: `RunConfig` fields over the preset (the first row)
    'the preset: Adam, four stages, T_max 200': {},
    "'trained using SGD' (momentum 0.9, the same lr)": dict(opt='sgd'),
    "'three block layers' (a 16-channel stem, then 32, 128, 256)": dict(arch_kw=dict(widths=[32, 128, 256], stem=16)),
    "'Annealing Cosine: 50 cycles' read as T_max 50": dict(recipe_kw=dict(t_max=50)),
    "'Learning Rate Decay: by 0.1' read as a cosine to lr/10 over the run": dict(recipe_kw=dict(t_max=20, eta_min=3.7168e-5)),
}


def _accuracy(model, x, y, bs=500):
    "Right or wrong per image of a saved model on uint8 images `x`: the library's preprocessing, no TTA (as the report)"
    import torch
    from dynblocks.infer import to_input
    right = []
    with torch.inference_mode():
        for i in range(0, len(x), bs):
            right.append(model(torch.from_numpy(to_input(x[i:i+bs], model.meta))).argmax(1) == torch.from_numpy(y[i:i+bs]))
    return torch.cat(right).numpy()


def _load(path):
    "The load averages logged once a minute in `path` (a line: time and three load averages, or the 1-minute one alone), summarised"
    if not path: return None
    vals = [float(p[1] if len(p) >= 4 else p[0]) for p in (l.split() for l in open(path)) if p]
    return dict(samples=len(vals), load1_median=statistics.median(vals), load1_max=max(vals), every_s=60) if vals else None


def score(a):
    from dynblocks.export import load_model
    from dynblocks.cifar import load_cifar10
    from dynblocks.measure import machine, pack
    run = Path(a.run)
    s = json.loads((run/'summary.json').read_text())
    if s['recipe'] != 'seed002' or s['config'].get('epochs') not in (None, 20) or s['n_train'] != 50_000:
        sys.exit(f"{run} is not the full seed002 recipe (recipe {s['recipe']}, {s['n_train']} training images, epochs {s['config'].get('epochs')}).")
    data = load_cifar10(s['data'], download=False)
    x, y = data['test']
    c = _accuracy(load_model(run), x, y)
    hist = list(csv.DictReader(open(run/'history.csv')))
    t0 = float(Path(a.start).read_text()) if a.start else None
    t1 = float(Path(a.end).read_text()) if a.end else None
    row = dict(run=str(run), seed=s['config']['seed'], epochs=s['epochs'], bs=s['bs'], n_train=s['n_train'], params=s['params'],
               acc_exact1000=float(c[:1000].mean()), acc_jpeg9000=float(c[1000:].mean()), acc_all=float(c.mean()),
               final_valid_accuracy=s['final_accuracy'], best_valid_accuracy=s['best_accuracy'],
               curve=[dict(epoch=int(h['epoch']), train_loss=float(h['train_loss']), valid_loss=float(h['valid_loss']),
                           valid_accuracy=float(h['valid_accuracy'])) for h in hist],
               train_s=s['wall_s'], run_s=s['run_s'], wall_s=None if t0 is None or t1 is None else round(t1 - t0, 1),
               images_per_s=s['images_per_s'], resumed_from=s['resumed_from'],
               load=_load(a.load),
               correct=pack(c), machine=machine(), versions=s['versions'], config=s['config'],
               scored=time.strftime('%Y-%m-%d'))
    res = json.loads(OUT.read_text()) if OUT.exists() else dict(
        what='report 002 on a CPU', report_acc=84.1, recipe='seed002',
        command='dynblocks train --recipe seed002 --data DIR --seed S --out RUN; python bench/report002.py score RUN', runs=[])
    res['runs'] = [r for r in res['runs'] if r['seed'] != row['seed']] + [row]
    res['summary'] = {k: dict(mean=statistics.mean(r[k] for r in res['runs']), min=min(r[k] for r in res['runs']),
                              max=max(r[k] for r in res['runs']), n=len(res['runs'])) for k in ('acc_exact1000', 'acc_jpeg9000', 'acc_all')}
    OUT.write_text(json.dumps(res, indent=1) + '\n')
    print(json.dumps({k: row[k] for k in ('seed', 'acc_exact1000', 'acc_jpeg9000', 'acc_all', 'train_s', 'images_per_s')}))


def _wall(trials):
    "Seconds from the first trial's start to the last one's end"
    s = [t.datetime_start for t in trials if t.datetime_start]; e = [t.datetime_complete for t in trials if t.datetime_complete]
    return round((max(e) - min(s)).total_seconds(), 1) if s and e else None


def tune(a):
    import optuna
    st = optuna.load_study(study_name=a.study, storage=a.storage)
    trials = []
    for t in st.trials:
        trials.append(dict(number=t.number, state=t.state.name, value=t.value, params=t.params,
                           seconds=None if t.datetime_complete is None or t.datetime_start is None
                           else round((t.datetime_complete - t.datetime_start).total_seconds(), 1),
                           steps={str(k): v for k, v in t.intermediate_values.items()},
                           last_loss=t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None))  # a pruned trial's too
    done = [t for t in trials if t['state'] == 'COMPLETE']
    best = min(done, key=lambda t: t['value']) if done else None
    rank = lambda pred: sorted([t['value'] for t in done]).index(min(t['value'] for t in done if pred(t))) + 1 if any(pred(t) for t in done) else None
    near = lambda t: t['params']['opt'] == 'adam' and t['params']['bs'] == 16 and 1e-4 <= t['params']['lr'] <= 1e-3
    res = dict(what="report 002's search at reduced fidelity", command=a.command, storage=a.storage.rsplit('/', 1)[-1], study=a.study,
               fidelity=a.fidelity, load=_load(a.load), wall_s=_wall(st.trials), machine=__import__('dynblocks.measure', fromlist=['machine']).machine(), trials=trials,
               best=best, report_choice=dict(opt='adam', lr=3.7168e-4, bs=16),
               report_choice_rank=dict(rule='the best completed trial with Adam, batch 16 and lr in 1e-4..1e-3 (the neighbourhood of the report\'s choice)',
                                       rank=rank(near), of=len(done)),
               report_choice_ranks=dict(  # each of the report's three choices alone: the rank of the best completed trial that shares it
                   opt=rank(lambda t: t['params']['opt'] == 'adam'), bs=rank(lambda t: t['params']['bs'] == 16),
                   lr=rank(lambda t: 3.7168e-4/2 <= t['params']['lr'] <= 3.7168e-4*2), lr_rule='lr within a factor of 2 of 3.7e-4'))
    Path(a.out or TUNE).write_text(json.dumps(res, indent=1) + '\n')
    print(json.dumps(dict(best=best, rank=res['report_choice_rank']), indent=1))


def readings(a):
    "Short runs of each reading (`READINGS`) on a stratified subset, the same seed, scored on the first `n_valid` test images (the exact 0-999)"
    from dynblocks.train import RunConfig, train_run
    from dynblocks.measure import machine
    rows = []
    for name, kw in READINGS.items():
        rk = dict(kw.get('recipe_kw', {}))
        rk['t_max'] = rk.get('t_max', 200)*a.epochs/20  # each schedule compressed to the short run: the same shape over its epochs
        cfg = RunConfig(recipe='seed002', data=a.data, n_train=a.n_train, n_valid=a.n_valid, epochs=a.epochs, seed=a.seed,
                        **{**kw, 'recipe_kw': rk})
        learn = train_run(cfg, log=False)
        s, r = learn.run_summary, learn.recipe
        rows.append(dict(reading=name, overrides=kw, acc=s['final_accuracy'], best=s['best_accuracy'], train_s=s['wall_s'],
                         images_per_s=s['images_per_s'], params=s['params'],
                         ran=dict(opt=r.opt, t_max=r.t_max, eta_min=r.eta_min, model_kw=cfg.model_kw())))  # what the run was given
        print(json.dumps(rows[-1]), flush=True)
    Path(a.out or READ).write_text(json.dumps(dict(what="report 002's readings, short runs", n_train=a.n_train, epochs=a.epochs, seed=a.seed,
        schedule='each T_max times epochs/20: the 20-epoch schedule compressed to the short run',
        scored_on=f'the first {a.n_valid} test images (0-999: the exact ones)', command='python bench/report002.py readings ' + ' '.join(sys.argv[2:]),
        machine=machine(), date=time.strftime('%Y-%m-%d'), rows=rows), indent=1) + '\n')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest='part', required=True)
    s = sub.add_parser('score'); s.add_argument('run'); s.add_argument('--load'); s.add_argument('--start'); s.add_argument('--end')
    t = sub.add_parser('tune'); t.add_argument('storage'); t.add_argument('--study', required=True); t.add_argument('--command', required=True)
    t.add_argument('--fidelity', required=True, help='what the trials trained on, in words'); t.add_argument('--load', help='the load log of the search')
    t.add_argument('--out', default=None, help=f'JSON file (default: {TUNE})')
    r = sub.add_parser('readings'); r.add_argument('--data', required=True); r.add_argument('--n-train', type=int, default=10_000)
    r.add_argument('--epochs', type=int, default=3); r.add_argument('--seed', type=int, default=0)
    r.add_argument('--n-valid', type=int, default=1000); r.add_argument('--out', default=None, help=f'JSON file (default: {READ})')
    a = p.parse_args(argv)
    return dict(score=score, tune=tune, readings=readings)[a.part](a)


if __name__ == '__main__': main()
