"""One process of a distributed `dynblocks train` (started by `accelerate launch` in `test_cli.py`).

Runs the command's `train` with the given arguments while recording every file this process creates, writes, renames
or removes under `--out` (Python-level opens, `os` calls, and `torch.save`); then saves its final weights and that
record to `$DDP_RECORD/rank<R>.pt` for the test to compare."""
import os, sys
from pathlib import Path
import torch

argv = sys.argv[1:]
out = os.path.realpath(argv[argv.index('--out') + 1])
written, recording = [], [True]

def _note(p):
    if recording[0] and isinstance(p, (str, bytes, os.PathLike)):
        p = os.path.realpath(os.fsdecode(p))
        if p == out or p.startswith(out + os.sep): written.append(p)

def _audit(event, args):
    if event == 'open':
        path, mode, flags = args
        if (mode and any(c in mode for c in 'wax+')) or (flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT): _note(path)
    elif event in ('os.mkdir', 'os.remove', 'os.rmdir', 'os.truncate'): _note(args[0])
    elif event == 'os.rename': _note(args[0]); _note(args[1])
sys.addaudithook(_audit)

_save = torch.save  # torch writes files given by name from C++, out of the audit hook's sight
def _recording_save(obj, f, *a, **k):
    _note(f)
    return _save(obj, f, *a, **k)
torch.save = _recording_save

from dynblocks import cli
learn = cli.train(cli.make_parser().parse_args(argv))
recording[0] = False
rank = int(os.environ.get('RANK', 0))
_save(dict(state=learn.model.state_dict(), written=sorted(set(written)), summary=learn.run_summary),
      Path(os.environ['DDP_RECORD'])/f'rank{rank}.pt')
