"""Execute the notebooks in place so the docs show real outputs, keeping only outputs that teach.

    DYNBLOCKS_DATA=../shared/data python tools/run_nbs.py [nbs/03_learner.ipynb ...]

Runs every cell (slow ones too: their figures come from real runs), then drops progress bars, fastai's per-epoch
training tables, warnings and other stderr, and keeps plots, tables and printed results. Figures are stored at most
800 px wide with a 256-colour palette (a few tens of KiB each, not hundreds). Then `nbdev-clean`.
"""
import re, sys, subprocess
from pathlib import Path
from fastcore.nbio import read_nb, write_nb
from execnb.shell import CaptureShell

ROOT = Path(__file__).resolve().parent.parent

_SPAM = re.compile(r'█|\|---|Epoch \d+/\d+|^epoch\s+train_loss|^\[\d+, .*\]$|^\d+\s+[-\d.]+\s.*\d\d:\d\d\s*$')

_MD_RULE = re.compile(r'\|(\s*:?-+:?\s*\|)+')  # a markdown table's header rule (`|---|---|`): printed tables keep it

def _clean_stream(o):
    "stdout without progress bars and fastai's per-epoch log lines"
    lines = ''.join(o.get('text', '')).replace('\r', '\n').splitlines()
    kept = [l for l in lines if _MD_RULE.fullmatch(l.strip()) or not _SPAM.search(l)]
    kept = [l for i, l in enumerate(kept) if l.strip() or (0 < i < len(kept) - 1 and kept[i-1].strip())]  # one blank line between paragraphs
    while kept and not kept[-1].strip(): kept.pop()
    o['text'] = ''.join(l + '\n' for l in kept)
    return o

def _teaches(o) -> bool:
    if o.get('output_type') == 'stream':
        return o.get('name') == 'stdout' and 'warn' not in ''.join(o.get('text', '')).lower() and bool(_clean_stream(o)['text'])
    if o.get('output_type') == 'error': return False
    data = o.get('data', {})
    html = ''.join(data.get('text/html', ''))
    if 'progress' in html or ('<th>epoch</th>' in html and 'train_loss' in html): return False
    plain = ''.join(data.get('text/plain', ''))
    if not html and 'text/markdown' not in data and ('<IPython.core.display' in plain or plain.startswith('<Figure size')) \
            and 'image/png' not in data: return False  # a bare repr; `display(Markdown(...))` is a sentence of the page
    return True

MAX_W = 800

def _shrink_png(b64:str) -> str:
    "A stored figure at most `MAX_W` px wide, on white, with a 256-colour palette (unchanged if that is not smaller)"
    import base64, io
    from PIL import Image
    im = Image.open(io.BytesIO(base64.b64decode(b64)))
    if im.mode == 'P' and im.width <= MAX_W: return b64  # already done
    rgb = Image.new('RGB', im.size, 'white')
    rgb.paste(im.convert('RGBA'), mask=im.convert('RGBA').split()[-1])
    if rgb.width > MAX_W: rgb = rgb.resize((MAX_W, round(rgb.height*MAX_W/rgb.width)), Image.LANCZOS)
    buf = io.BytesIO()
    rgb.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(buf, 'PNG', optimize=True)
    res = base64.b64encode(buf.getvalue()).decode()
    return res if len(res) < len(b64) else b64

def run(nb_path: Path, execute=True):
    import os
    os.chdir(nb_path.parent)  # as nbdev-test runs them
    nb = read_nb(nb_path)
    if execute: CaptureShell(path=nb_path.parent).run_all(nb, exc_stop=True)
    for c in nb.cells:
        if c.cell_type != 'code': continue
        outs = [o for o in c.get('outputs', []) if _teaches(o)]
        imgs = [i for i, o in enumerate(outs) if 'image/png' in o.get('data', {})]
        c.outputs = [o for i, o in enumerate(outs) if 'image/png' not in o.get('data', {}) or i == imgs[-1]]  # a figure redrawn: last
        for o in c.outputs:
            if 'image/png' in o.get('data', {}):
                o['data']['image/png'] = _shrink_png(''.join(o['data']['image/png']))
                o.get('metadata', {}).pop('image/png', None)  # the old size hint
    write_nb(nb, nb_path)
    print('ran', nb_path)

if __name__ == '__main__':
    args = [a for a in sys.argv[1:] if a != '--filter-only']  # --filter-only: clean existing outputs, run nothing
    paths = [Path(p).resolve() for p in args] or sorted((ROOT/"nbs").glob("*.ipynb"))
    for p in paths: run(p, execute='--filter-only' not in sys.argv)
    subprocess.run([str(Path(sys.executable).parent/'nbdev-clean')], cwd=ROOT, check=True)
