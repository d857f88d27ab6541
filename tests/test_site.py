"""The documentation site, checked in a real browser (headless Chromium driven by Playwright).

Builds `_docs/` with the offline build (`tools/build_docs.py`), serves it on 127.0.0.1 and visits every page of the
sidebar: each answers 200, no internal link or image is broken (anchors included), no Quarto syntax or raw TeX is
left, math is rendered, the main API entries are on their pages, every figure has a non-zero rendered size, the
sidebar reaches every page, no page scrolls sideways in a 1280-px-wide window (nothing wider than the main column, no
table in a box that scrolls sideways), and no code block shows a markdown heading (a section title left in a code cell). Screenshots of the home page and one API page go to `_docs/screenshots/`.

Needs Debian's `chromium` (`apt-get install chromium`) and the `playwright` Python package (in the `dev` extra; it
drives the system browser: no browser download). Run alone with `bash dev.sh docs-check`.
"""
import functools, http.server, os, re, shutil, subprocess, sys, threading
from pathlib import Path
from urllib.parse import urljoin, urlparse
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT/'_docs'
CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
API = {'block.html': ['DynBlock'], 'models.html': ['create_model'], 'data.html': ['cifar10_dls'], 'train.html': ['train_run'],
       'learner.html': ['dyn_learner'], 'callbacks.html': ['StopOnNanLoss'], 'attention.html': ['BranchWeights'],
       'budget.html': ['TimeBudget'], 'checkpoint.html': ['Checkpoint'], 'averaging.html': ['EMA'], 'tta.html': ['Learner.flip_tta'],
       'options.html': ['Option', 'option_fields']}
ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run', '--disable-quic']

pytestmark = pytest.mark.browser

# What overflows the main column of a page: the window's scroll width, every element outside a box that scrolls sideways
# and wider than the column (the outermost one, with its first words), and every box whose content scrolls sideways
LAYOUT = '''() => {
  const main = document.querySelector('main'), cs = getComputedStyle(main), r = main.getBoundingClientRect();
  const left = r.left + parseFloat(cs.paddingLeft) - 1, right = r.right - parseFloat(cs.paddingRight) + 1;
  const what = e => e.tagName.toLowerCase() + (typeof e.className === 'string' && e.className.trim() ? '.' + e.className.trim().split(/\\s+/).join('.') : '')
                    + ' "' + (e.innerText || e.getAttribute('src') || '').trim().replace(/\\s+/g, ' ').slice(0, 70) + '"';
  const wide = [], scrolls = [];
  const walk = e => { for (const c of e.children) {
    const b = c.getBoundingClientRect();
    if (b.width > 0 && (b.right > right || b.left < left)) { wide.push({what: what(c), width: Math.round(b.width), past: Math.round(b.right - right)}); continue; }
    if (['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(c).overflowX)) {
      if (c.scrollWidth > c.clientWidth + 1) scrolls.push({what: what(c), width: c.scrollWidth, shown: c.clientWidth, table: !!c.querySelector('table'),
                                                           output: !!c.closest('.output_wrapper')});
      continue; }
    walk(c); } };
  walk(main);
  return {scroll_width: document.documentElement.scrollWidth, window_width: document.documentElement.clientWidth,
          column: Math.round(right - left), wide, scrolls};
}'''


@pytest.fixture(scope='module')
def site():
    "Build the site, serve it on a free local port; yields the base URL"
    if not CHROMIUM or not _has_playwright():
        msg = "the browser test needs Debian's chromium (apt-get install chromium) and `pip install playwright`"
        if os.environ.get('CI'): pytest.fail(msg)
        pytest.skip(msg)
    r = subprocess.run([sys.executable, 'tools/build_docs.py'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    handler = functools.partial(_QuietHandler, directory=str(DOCS))
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_address[1]}/'
    srv.shutdown()

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass

def _has_playwright():
    try: import playwright.sync_api  # noqa: F401
    except ImportError: return False
    return True

def _pages():
    sys.path.insert(0, str(ROOT/'tools'))
    from build_docs import _read_sidebar, page_name
    return [page_name(Path(e)) for _, entries in _read_sidebar() for e in entries]


@pytest.fixture(scope='module')
def crawl(site):
    "Visit every sidebar page in Chromium; returns what each page showed"
    from playwright.sync_api import sync_playwright
    res = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={'width': 1280, 'height': 900})
        page.route(re.compile(r'^https?://(?!127\.0\.0\.1)'), lambda route: route.abort())  # offline: no CDN, no network
        failed = []
        page.on('response', lambda r: r.url.startswith(site) and r.status >= 400 and failed.append((r.url, r.status)))
        for name in _pages():
            resp = page.goto(site + name, wait_until='load')
            res[name] = dict(
                status=resp.status,
                links=page.eval_on_selector_all('main a[href]', 'els => els.map(e => e.getAttribute("href"))'),
                sidebar=page.eval_on_selector_all('nav.sidebar a.page', 'els => els.map(e => e.getAttribute("href"))'),
                ids=set(page.eval_on_selector_all('[id]', 'els => els.map(e => e.id)')),
                images=page.eval_on_selector_all('main img', '''els => els.map(e => ({src: e.src.slice(0, 60),
                    natural: e.naturalWidth, w: e.getBoundingClientRect().width, h: e.getBoundingClientRect().height}))'''),
                headings=page.eval_on_selector_all('main h1, main h2, main h3, main h4',
                                                    'els => els.map(e => e.textContent.trim())'),
                text=page.inner_text('main'),
                code=page.eval_on_selector_all('main pre', 'els => els.map(e => e.innerText)'),
                layout=page.evaluate(LAYOUT),
                math=page.eval_on_selector_all('main math', 'els => els.filter(e => e.getBoundingClientRect().width > 0).length'))
            if name in ('index.html', 'block.html'):
                (DOCS/'screenshots').mkdir(exist_ok=True)
                page.screenshot(path=str(DOCS/'screenshots'/name.replace('.html', '.png')), full_page=True)
        browser.close()
    res['_failed'] = failed
    return res


def test_every_page_answers_200(crawl):
    pages = _pages()
    assert len(pages) >= 12, pages
    assert {n: crawl[n]['status'] for n in pages} == {n: 200 for n in pages}
    assert crawl['_failed'] == [], crawl['_failed']  # every local request the pages made (styles, images)

def test_no_broken_internal_link(crawl, site):
    broken = []
    for name in _pages():
        for href in crawl[name]['links']:
            url = urlparse(urljoin(site + name, href))
            if url.scheme not in ('http', 'https') or not (site.rstrip('/').endswith(url.netloc)): continue
            target = url.path.lstrip('/') or 'index.html'
            if not (DOCS/target).is_file(): broken.append((name, href, 'no such page')); continue
            if url.fragment and target in crawl and url.fragment not in crawl[target]['ids']:
                broken.append((name, href, 'no such anchor'))
    assert not broken, broken

def test_api_entries_are_on_their_pages(crawl):
    for page, names in API.items():
        for n in names:
            assert any(h.startswith(n) for h in crawl[page]['headings']), (page, n, crawl[page]['headings'][:40])

def test_every_figure_has_a_rendered_size(crawl):
    imgs = [(name, i) for name in _pages() for i in crawl[name]['images']]
    assert len(imgs) >= 15, len(imgs)  # plots of real runs on several pages
    bad = [(name, i) for name, i in imgs if not (i['natural'] > 0 and i['w'] > 0 and i['h'] > 0)]
    assert not bad, bad

def test_sidebar_reaches_every_page(crawl):
    pages = _pages()
    built = sorted(p.name for p in DOCS.glob('*.html'))
    for name in pages: assert sorted(crawl[name]['sidebar']) == sorted(pages), name  # the same sidebar everywhere
    assert sorted(pages) == built  # and it lists every page that was built

def test_screenshots_saved(crawl):
    for n in ('index.png', 'block.png'):
        f = DOCS/'screenshots'/n
        assert f.exists() and f.stat().st_size > 20_000, f

def test_no_unrendered_syntax(crawl):
    "Quarto-only syntax and TeX must not reach the reader as text"
    bad = {}
    for name in _pages():
        t = crawl[name]['text']
        hits = [s for s in ('{target=', '$$', '\\frac', '\\mathrm', 'show_doc(') if s in t] + re.findall(r'(?m)^#\| \w+', t)
        if hits: bad[name] = hits
    assert not bad, bad

def test_math_is_rendered(crawl):
    assert crawl['block.html']['math'] >= 5  # the block's formulas, as MathML

def test_no_page_scrolls_sideways(crawl):
    "In a 1280-px-wide window no page scrolls sideways: nothing is wider than the main column, and no table sits in a box that scrolls"
    bad = {}
    for name in _pages():
        L, hits = crawl[name]['layout'], []
        if L['scroll_width'] > L['window_width']: hits.append(f"the page is {L['scroll_width']} px wide in a {L['window_width']} px window")
        hits += [f"{w['what']} is {w['width']} px wide, {w['past']} px past the {L['column']} px column" for w in L['wide']]
        hits += [f"{s['what']} scrolls sideways ({s['width']} px in {s['shown']} px)" for s in L['scrolls'] if s['table']]
        if hits: bad[name] = hits
    assert not bad, bad

def test_no_markdown_heading_inside_code(crawl):
    "A section title belongs in a markdown cell: no code block on any page shows a line like `# ## Title`"
    bad = {name: hits for name in _pages()
           if (hits := [l.strip() for t in crawl[name]['code'] for l in t.splitlines() if re.match(r'\s*#\s+#{1,6}\s+\S', l)])}
    assert not bad, bad
