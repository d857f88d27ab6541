"""Build the docs site into `_docs/` and `README.md` without Quarto.

    python tools/build_docs.py            # site + README
    python tools/build_docs.py --readme   # README.md only
    python tools/build_docs.py --check    # exit 1 if README.md differs from nbs/index.ipynb

With Quarto installed, `nbdev-docs` is the real build (same notebooks, same `nbs/sidebar.yml`). This script is the
offline path: nbdev's own notebook processing (`proc_nbs`: directives, `show_doc` tables, links to the API) into
`_proc/`, then nbconvert's HTML exporter per page, wrapped in a page with the hand-ordered sidebar of
`nbs/sidebar.yml`. Images are embedded, code is highlighted by Pygments, links to the documentation site are made
relative.
"""
from __future__ import annotations
import argparse, html, re, shutil, sys
from pathlib import Path
import nbformat, yaml

ROOT = Path(__file__).resolve().parent.parent
NBS, DOCS = ROOT/'nbs', ROOT/'_docs'


def page_name(nb:Path) -> str:
    "Output name of a notebook, as Quarto names it: `00_block.ipynb` -> `block.html`"
    return re.sub(r'^\d+[a-z]?_', '', nb.stem) + '.html'


# ---------------------------------------------------------------- README
def _directives(src:str) -> dict:
    return {m.group(1): m.group(2).strip() for m in re.finditer(r'^#\|\s*([\w-]+):?\s*(.*)$', src, re.M)}

def render_readme(nb_path:Path=NBS/'index.ipynb') -> str:
    "Markdown for README.md from the index notebook: markdown cells as they are, code cells fenced with outputs"
    nb = nbformat.read(nb_path, as_version=4)
    out = []
    for c in nb.cells:
        if c.cell_type == 'markdown': out.append(c.source.strip()); continue
        if c.cell_type != 'code': continue
        d = _directives(c.source)
        if 'hide' in d or 'export' in d or 'exporti' in d: continue
        src = '\n'.join(l for l in c.source.splitlines() if not l.startswith('#|')).strip()
        if src and 'hide_input' not in d and d.get('echo') != 'false': out.append(f'```python\n{src}\n```')  # as on the site
        for o in c.get('outputs', []):
            data = o.get('data', {})
            if 'text/markdown' in data: out.append(''.join(data['text/markdown']).strip())
            elif 'text/plain' in data: out.append('    ' + ''.join(data['text/plain']).strip().replace('\n', '\n    '))
            elif o.get('output_type') == 'stream' and d.get('output') == 'asis': out.append(''.join(o['text']).strip())  # markdown, as Quarto renders it
            elif o.get('output_type') == 'stream': out.append('    ' + ''.join(o['text']).strip().replace('\n', '\n    '))
    return '\n\n'.join(out) + '\n'


# ---------------------------------------------------------------- site
CSS = """
body{margin:0;font:16px/1.55 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#212529}
.layout{display:flex;min-height:100vh} nav.sidebar{width:250px;flex:none;background:#f6f8fa;border-right:1px solid #dee2e6;
padding:1rem;position:sticky;top:0;height:100vh;overflow-y:auto;box-sizing:border-box}
nav.sidebar .brand{font-weight:700;font-size:1.3rem;display:block;margin-bottom:1rem;color:#212529;text-decoration:none}
nav.sidebar .section{font-weight:600;margin:1rem 0 .3rem;color:#495057;font-size:.85rem;text-transform:uppercase}
nav.sidebar a.page{display:block;padding:.2rem .5rem;color:#0d6efd;text-decoration:none;border-radius:4px}
nav.sidebar a.page.active{background:#0d6efd;color:#fff}
main{flex:1;max-width:980px;padding:1.5rem 2.5rem;box-sizing:border-box;min-width:0}
pre{background:#f6f8fa;padding:.7rem;border-radius:6px;overflow-x:auto;font-size:.85rem}
code{font-size:.88em} table{border-collapse:collapse;margin:.8rem 0} th,td{border:1px solid #dee2e6;padding:.3rem .6rem}
img{max-width:100%} .source-link{float:right;font-size:smaller} math[display=block]{margin:.8rem 0;font-size:1.1em} .output pre{background:#fff;border-left:3px solid #dee2e6} blockquote{color:#555;border-left:4px solid #0d6efd;
margin-left:0;padding-left:1rem} h2{border-bottom:1px solid #eee;padding-bottom:.2rem;margin-top:2rem}
"""

def _sidebar(active:str, pages:list) -> str:
    items = ['<a class="brand" href="index.html">dynblocks</a>']
    for sec, entries in pages:
        if sec: items.append(f'<div class="section">{html.escape(sec)}</div>')
        for title, href in entries:
            cls = 'page active' if href == active else 'page'
            items.append(f'<a class="{cls}" href="{href}">{html.escape(title)}</a>')
    return '<nav class="sidebar">' + '\n'.join(items) + '</nav>'

def _title(nb) -> str:
    for c in nb.cells:
        if c.cell_type == 'raw':
            m = re.search(r'^title:\s*(.+)$', c.source, re.M)
            if m: return m.group(1).strip().strip('"\'')
        if c.cell_type == 'markdown':
            m = re.search(r'^#\s+(.+)$', c.source, re.M)
            if m: return m.group(1).strip()
    return 'dynblocks'

def _read_sidebar() -> list:
    "[(section title, [notebook path, ...]), ...] from nbs/sidebar.yml"
    cfg = yaml.safe_load((NBS/'sidebar.yml').read_text())['website']['sidebar']['contents']
    res = []
    for e in cfg:
        if isinstance(e, str): res.append(('', [e]))
        else: res.append((e.get('section', ''), [o if isinstance(o, str) else o['href'] for o in e.get('contents', [])]))
    return res

def _fix_links(body:str, doc_url:str) -> str:
    if doc_url: body = body.replace(doc_url.rstrip('/') + '/', '')
    return re.sub(r'href="([\w./-]+?)\.ipynb(#[^"]*)?"', lambda m: f'href="{page_name(Path(m.group(1)))}{m.group(2) or ""}"', body)

def _pandoc_id(text:str) -> str:
    "The id Quarto (pandoc's auto_identifiers) gives a heading with this text, which nbdev's links point to"
    t = re.sub(r'[^\w\s.-]', '', html.unescape(text).strip().lower())
    t = re.sub(r'\s+', '-', t)
    return re.sub(r'^[^a-z]+', '', t)

_HEADING = re.compile(r'(<h([1-6])\b[^>]*\bid="([^"]*)"[^>]*>)(.*?)(</h\2>)', re.S)

def _quarto_ids(body:str) -> str:
    "Give every heading Quarto's id too (nbconvert keeps case and punctuation), so links written by nbdev resolve"
    def add(m):
        open_, _, hid, content, close = m.groups()
        pid = _pandoc_id(re.sub(r'<[^>]+>', '', content).replace('¶', ''))
        return m.group(0) if not pid or pid == hid else f'{open_}<span id="{pid}"></span>{content}{close}'
    return _HEADING.sub(add, body)

_SRC_LINK = re.compile(r'\[([^\]]+)\]\(([^)\s]+)\)\{target="_blank"[^}]*\}')
_CODE = re.compile(r'```.*?```|`[^`\n]*`', re.S)
_MATH = re.compile(r'\$\$(.+?)\$\$|(?<![\\$\w])\$([^$\n`]+?)\$(?![\w$])', re.S)

def _markdown(src:str) -> str:
    "Quarto's markdown extensions as plain HTML: `{target=...}` link attributes, and TeX math as MathML (no MathJax)"
    from latex2mathml.converter import convert
    src = _SRC_LINK.sub(r'<a href="\2" target="_blank" class="source-link">\1</a>', src)
    code = []
    def keep(m): code.append(m.group(0)); return f'\x00{len(code)-1}\x00'
    src = _CODE.sub(keep, src)  # no math inside code
    def math(m):
        block = m.group(1) is not None
        tex = (m.group(1) if block else m.group(2)).strip()
        try: return convert(tex, display='block' if block else 'inline')
        except Exception as e: raise ValueError(f"Cannot render the math {tex!r}: {e}") from e
    src = _MATH.sub(math, src)
    return re.sub('\x00(\\d+)\x00', lambda m: code[int(m.group(1))], src)

def _prepare(nb):
    "What Quarto does with a processed notebook: front matter as title, `#|` options applied, markdown extensions"
    fm = {}
    for c in nb.cells:
        if c.cell_type == 'raw' and c.source.startswith('---'): fm = yaml.safe_load(c.source.strip('-\n')) or {}
    cells = []
    if fm.get('title'):
        head = f"# {fm['title']}" + (f"\n\n> {fm['description']}" if fm.get('description') else '')
        cells.append(nbformat.v4.new_markdown_cell(head))
    for c in nb.cells:
        if c.cell_type == 'raw': continue
        if c.cell_type == 'markdown': c.source = _markdown(c.source); cells.append(c); continue
        d = _directives(c.source)
        c.source = '\n'.join(l for l in c.source.splitlines() if not l.startswith('#|')).strip()
        for o in c.get('outputs', []):
            if 'text/markdown' in o.get('data', {}): o['data']['text/markdown'] = _markdown(''.join(o['data']['text/markdown']))
        if d.get('output') == 'asis':  # e.g. `show_doc`, or printed markdown: it becomes part of the page, as Quarto does it
            md = '\n\n'.join(''.join(o['data']['text/markdown']) if 'text/markdown' in o.get('data', {}) else _markdown(''.join(o['text']))
                               for o in c.get('outputs', []) if 'text/markdown' in o.get('data', {}) or o.get('name') == 'stdout')
            if md.strip(): cells.append(nbformat.v4.new_markdown_cell(md))
            continue
        if d.get('echo') == 'false' or 'hide_input' in d: c.setdefault('metadata', {}).setdefault('tags', []).append('remove_input')
        if c.source or c.get('outputs'): cells.append(c)
    nb.cells = cells
    return nb

_CELL_KEYS = {'cell_type', 'source', 'metadata', 'outputs', 'execution_count', 'id', 'attachments'}

def build_site(process:bool=True):
    from nbconvert import HTMLExporter
    from pygments.formatters import HtmlFormatter
    from nbdev.config import get_config
    cfg = get_config(ROOT)
    if process:
        from nbdev.quarto import refresh_quarto_yml
        from nbdev.serve import proc_nbs
        import nbdev.doclinks
        import os; os.chdir(ROOT)
        refresh_quarto_yml(); nbdev.doclinks._build_modidx()
        proc_nbs(NBS, n_workers=2)  # two processes: the docs build is half its time on two cores
    proc = ROOT/'_proc'
    from nbconvert.preprocessors import TagRemovePreprocessor
    exporter = HTMLExporter(template_name='basic')
    exporter.register_preprocessor(TagRemovePreprocessor(remove_input_tags=('remove_input',)), enabled=True)
    exporter.exclude_input_prompt = exporter.exclude_output_prompt = True
    side = _read_sidebar()
    pages, nbs = [], {}
    for sec, entries in side:
        ents = []
        for e in entries:
            nb = nbformat.read(proc/e, as_version=4)
            for c in nb.cells:  # nbdev's processing leaves bookkeeping keys that nbformat's schema refuses
                for k in [k for k in c if k not in _CELL_KEYS]: del c[k]
                c.get('metadata', {}).pop('execution', None)
            href = page_name(Path(e))
            nbs[href] = nb
            ents.append((_title(nb), href))
        pages.append((sec, ents))
    if DOCS.exists(): shutil.rmtree(DOCS)
    DOCS.mkdir()
    css = CSS + HtmlFormatter(style='default').get_style_defs('.highlight') + (NBS/'styles.css').read_text()
    (DOCS/'styles.css').write_text(css)
    for href, nb in nbs.items():
        body, _ = exporter.from_notebook_node(_prepare(nb))
        body = _quarto_ids(_fix_links(body, cfg.doc_url))
        title = _title(nb) if href != 'index.html' else 'dynblocks'
        page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} – dynblocks</title>'
                '<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="stylesheet" href="styles.css">'
                f'</head><body><div class="layout">{_sidebar(href, pages)}<main>{body}</main></div></body></html>')
        (DOCS/href).write_text(page)
    print(f'build_docs: {len(nbs)} pages in {DOCS}')


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--readme', action='store_true', help='README.md only')
    p.add_argument('--check', action='store_true', help='exit 1 if README.md is not rendered from nbs/index.ipynb')
    a = p.parse_args(argv)
    md = render_readme()
    if a.check:
        if (ROOT/'README.md').read_text() != md:
            sys.exit('README.md differs from nbs/index.ipynb: run `python tools/build_docs.py --readme` and commit.')
        return print('README.md is in sync with nbs/index.ipynb')
    (ROOT/'README.md').write_text(md)
    print('build_docs: README.md from nbs/index.ipynb')
    if not a.readme: build_site()

if __name__ == '__main__': main()
