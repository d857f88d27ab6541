"Every training option is declared once (`dynblocks.options.OPTIONS`): each has its field, its flag or `--recipe-kw`, its range and its message (the block options are tests/test_options.py)"
import contextlib, io
import pytest
from dataclasses import fields
from dynblocks.options import OPTIONS, ABSENT, REQUIRED
from dynblocks.recipes import Recipe
from dynblocks.train import RunConfig
from dynblocks.cli import make_parser

def bad_values(o):
    "Values outside what option `o` takes: past each bound, an excluded bound itself, a wrong choice or type"
    if o.choices is not None: return ['no-such-choice']
    if o.kind in (int, float):
        out = [float('nan')]
        if o.lo is not None: out += [o.lo - 1] + ([o.lo] if o.ends[0] == '(' else [])
        if o.hi is not None: out += [o.hi + 1] + ([o.hi] if o.ends[1] == ')' else [])
        if o.kind is int: out.append((o.lo or 0) + 1.5)
        return out
    if o.kind is dict: return [[1]]
    return [3]  # a number where a string or a boolean belongs

def message(o, label=None):
    "The start of the one-line error every way of giving option `o` a bad value must show"
    name = f'`{label or o.name}`'
    return f"Unknown {name}" if o.choices is not None else f"{name} must be {o.valid()}"

def parse_error(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as e: make_parser().parse_args(argv)
    assert e.value.code == 2
    return err.getvalue()

@pytest.mark.parametrize('name', list(OPTIONS))
def test_option(name):
    o = OPTIONS[name]
    assert o.help and o.help == o.help.strip() and '\n' not in o.help, "one line of help"
    assert (o.recipe is not ABSENT) == (name in {f.name for f in fields(Recipe)})  # its field, from the table
    assert (o.run is not ABSENT) == (name in {f.name for f in fields(RunConfig)})
    if o.run is not ABSENT:
        assert getattr(RunConfig(), name) == o.run  # the default is the table's
    if o.recipe not in (ABSENT, REQUIRED):
        assert getattr(Recipe('x', arch='dyn_tiny'), name) == o.recipe
    for bad in bad_values(o): check_bad(o, bad)

def check_bad(o, bad):
    name = o.name
    if o.recipe is not ABSENT:  # a recipe checks it, and so does `--recipe-kw` for the options only a recipe has
        with pytest.raises(ValueError) as e: Recipe('x', **{'arch': 'dyn_tiny', name: bad})
        assert message(o) in str(e.value)
    if o.run is ABSENT:
        with pytest.raises(ValueError) as e: RunConfig(recipe_kw={name: bad})
        assert message(o, f'recipe_kw.{name}') in str(e.value)
        return
    with pytest.raises(ValueError) as e: RunConfig(**{name: bad})
    assert message(o) in str(e.value)
    if o.flag:
        assert o.flag_name in make_parser()._subparsers._group_actions[0].choices['train'].format_help()
        if o.kind is not bool and not (o.kind is str and o.choices is None):  # free text takes any string from a shell
            text = '[1]' if o.kind is dict else str(bad)
            assert message(o) in parse_error(['train', o.flag_name, text]), (o.flag_name, text)
