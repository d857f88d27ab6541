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
