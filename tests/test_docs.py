"README.md is rendered from nbs/index.ipynb, and the docs build offline."
import subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def test_readme_in_sync():
    r = subprocess.run([sys.executable, 'tools/build_docs.py', '--check'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr

def test_readme_gives_the_two_commands():
    txt = (ROOT/'README.md').read_text()
    assert 'bash dev.sh train' in txt and 'bash dev.sh test' in txt

def test_wheel_contains_only_the_package(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation', '-q', '-w', str(tmp_path), '.'],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    import zipfile
    whl = next(tmp_path.glob('dynblocks-*.whl'))
    names = zipfile.ZipFile(whl).namelist()
    tops = {n.split('/')[0] for n in names}
    assert all(t == 'dynblocks' or t.endswith('.dist-info') for t in tops), tops
    assert 'dynblocks/block.py' in names and any(n.startswith('dynblocks/sample/test/cat/') for n in names)
    assert whl.stat().st_size < 4e6

# ---------------------------------------------------------------- API docs
MODULES = sorted(p.stem for p in (ROOT/'dynblocks').glob('*.py') if not p.stem.startswith('_') and p.stem != 'all')  # every module a notebook writes

def test_public_api_unchanged():
    "`from dynblocks.all import *` gives the names listed in tests/api.txt: moving code between modules changes none of them"
    import dynblocks.all
    want = (ROOT/'tests'/'api.txt').read_text().split()
    got = sorted(dynblocks.all.__all__)
    assert got == want, (f"dynblocks.all lost {sorted(set(want) - set(got))} and gained {sorted(set(got) - set(want))}: "
                         "if that is meant, update tests/api.txt.")
_HOOKS = {'forward', 'encodes', 'decodes', 'setups', 'new', 'extra_repr', 'activation'}  # protocols, not user API

def _public_api():
    "Public functions and classes of every module, their public methods, and the `Learner` methods dynblocks adds"
    import importlib, inspect, re
    from fastai.callback.core import _events
    names = []
    for m in MODULES:
        mod = importlib.import_module(f'dynblocks.{m}')
        for n in mod.__all__:
            o = getattr(mod, n)
            if not callable(o) or getattr(o, '__module__', None) != mod.__name__: continue  # constants, re-exports
            names.append(n)
            if inspect.isclass(o):  # its own public methods; overrides of a documented base's methods are the base's
                base = {k for b in o.__mro__[1:] if b.__module__ == mod.__name__ for k in vars(b)}
                names += [f'{n}.{k}' for k, v in vars(o).items() if not k.startswith('_') and k not in _HOOKS | base
                          and k not in _events and (inspect.isfunction(v) or isinstance(v, property))]
        src = (ROOT/'dynblocks'/f'{m}.py').read_text()
        names += [f'Learner.{f}' for f in re.findall(r'@patch\n(?:@\w+\n)*def (\w+)\(self:\s*Learner', src)]
    return names

def _documented():
    "{name: whether a code example follows its `show_doc` cell (a markdown cell may sit between)}"
    import re, nbformat
    res = {}
    for nb in sorted((ROOT/'nbs').glob('*.ipynb')):
        cells = nbformat.read(nb, as_version=4).cells
        for i, c in enumerate(cells):
            if c.cell_type != 'code': continue
            for m in re.finditer(r'^show_doc\(([\w.]+)', c.source, re.M):
                nxt = [d for d in cells[i+1:i+3] if d.cell_type == 'code'][:1]
                res[m.group(1)] = bool(nxt) and not nxt[0].source.lstrip().startswith(('show_doc', '#| hide'))
    return res

def test_every_public_name_has_show_doc_and_an_example():
    api, docs = _public_api(), _documented()
    assert len(api) > 60, api
    missing = [n for n in api if n not in docs]
    no_example = [n for n in api if n in docs and not docs[n]]
    assert not missing, f"no show_doc for: {missing}"
    assert not no_example, f"no example right below show_doc of: {no_example}"

def _resolve(name):
    import importlib
    from fastai.learner import Learner
    base, *rest = name.split('.')
    obj = Learner if base == 'Learner' else next(getattr(importlib.import_module(f'dynblocks.{m}'), base) for m in MODULES
                                                  if base in importlib.import_module(f'dynblocks.{m}').__all__)
    for r in rest: obj = getattr(obj, r)
    return obj

def test_every_public_parameter_is_documented():
    "docments: a `# comment` after each parameter, so `show_doc` has a full parameter table"
    import dataclasses, inspect
    from fastcore.docments import docments
    missing = {}
    for n in _public_api():
        o = _resolve(n)
        if isinstance(o, property): continue
        if inspect.isclass(o) and not dataclasses.is_dataclass(o):  # a dataclass documents its fields
            if '__init__' not in vars(o): continue  # enums, and inits inherited from fastai
            o = o.__init__
        var = {k for k, q in inspect.signature(o).parameters.items() if q.kind in (q.VAR_KEYWORD, q.VAR_POSITIONAL)}
        m = [k for k, v in docments(o, full=False).items() if v is None and k not in {'self', 'return'} | var]
        if m: missing[n] = m
    assert not missing, missing
