"ONNX for inference (issue 17): `dynblocks export RUN --onnx`, then `dynblocks predict model.onnx` answers as the run does."
import collections, json, os, subprocess, sys
from pathlib import Path
import pytest, torch
from dynblocks.core import DynblocksError

EXE = Path(sys.executable).parent/'dynblocks'
META = dict(format='dynblocks-model-1', arch='dyn_tiny', model_kw=dict(width=0.25), n_in=3, n_out=10, size=32,
            vocab=[f'c{i}' for i in range(10)], normalize=None)

def run(*args):
    return subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, timeout=600, env={**os.environ, 'CI': 'true'})

def model_with_stats(arch, **kw):
    "A registry model with random weights and BatchNorm statistics of a few batches (not the identity), as `load_model` gives it"
    from dynblocks.models import create_model
    torch.manual_seed(0)
    m = create_model(arch, width=0.25, **kw).train()
    with torch.no_grad():
        for _ in range(3): m(torch.randn(16, 3, 32, 32)*2 + 0.5)
    m.eval().meta = {**META, 'arch': arch, 'model_kw': dict(width=0.25, **kw)}
    return m

def graph(fn):
    "(operator counts, the operator that makes each BatchNormalization's input, the `group`s of the convs)"
    import onnx
    g = onnx.load(fn).graph
    made_by = {o: n.op_type for n in g.node for o in n.output}
    groups = [a.i for n in g.node if n.op_type == 'Conv' for a in n.attribute if a.name == 'group']
    return (collections.Counter(n.op_type for n in g.node),
            collections.Counter(made_by.get(n.input[0]) for n in g.node if n.op_type == 'BatchNormalization'), groups)

@pytest.fixture(scope='module')
def trained(tiny_run, tmp_path_factory):
    "A copy of the session's tiny run (tests/conftest.py: trained once): the export writes model.onnx into it"
    from conftest import run_copy
    return run_copy(tiny_run, tmp_path_factory.mktemp('runs')/'r')

def test_export_then_predict_through_both(trained, tmp_path, cli):
    from dynblocks.cifar import sample_path
    imgs = sorted(sample_path().rglob('*.png'))[::150][:8]  # a few classes
    r = cli('export', trained, '--onnx')  # in this process; the two predictions below run as a user runs them
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.startswith(f"wrote {trained/'model.onnx'} (any batch size)") and 'max abs difference' in r.stdout, r.stdout
    assert float(r.stdout.split()[-1]) <= 1e-4
    a, b = cli('predict', trained, *imgs), run('predict', trained/'model.onnx', *imgs)  # the ONNX one as a user runs it
    assert a.returncode == 0 and b.returncode == 0, a.stderr[-2000:] + b.stderr[-2000:]
    assert len(a.stdout.splitlines()) == len(imgs) and a.stdout == b.stdout  # file, class and probability to 3 decimals

PREDICT = ("import sys\nfrom dynblocks.cli import main\nmain({args!r})\n"
           "print(sorted(m for m in ('torch', 'fastai') if m in sys.modules), file=sys.stderr)")

def test_predict_loads_only_what_it_needs(trained, cli):
    "`dynblocks predict` on model.onnx imports neither torch nor fastai; on a run folder, torch but not fastai (what they import, not a time)"
    from dynblocks.cifar import sample_path
    img = str(sorted(sample_path().rglob('*.png'))[0])
    if not (trained/'model.onnx').exists(): assert cli('export', trained, '--onnx').returncode == 0
    for model, loaded in ((trained/'model.onnx', "[]"), (trained, "['torch']")):
        r = subprocess.run([sys.executable, '-c', PREDICT.format(args=['predict', str(model), img])], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0 and r.stdout.startswith(img), r.stderr[-1500:]
        assert r.stderr.splitlines()[-1] == loaded, (model, r.stderr[-500:])

def test_python_api_and_a_fixed_batch(trained, tmp_path):
    from dynblocks.cli import main
    from dynblocks.export import load_model, load_onnx, predict_files
    from dynblocks.cifar import sample_path
    imgs = sorted(sample_path().rglob('*.png'))[:5]
    import contextlib, io
    with contextlib.redirect_stdout(io.StringIO()) as f: main(['export', str(trained/'model.json'), '--onnx', '--batch', '2', '--out', str(tmp_path/'b2.onnx')])
    assert 'batches of 2' in f.getvalue(), f.getvalue()
    o = load_onnx(tmp_path/'b2.onnx', threads=1)
    assert o.batch == 2 and o.device == 'cpu' and o.meta['vocab'] == load_model(trained).meta['vocab']
    ra, rb = predict_files(load_model(trained), imgs), predict_files(o, imgs)  # 5 images: runs of 2, 2 and 1 (+1 of padding)
    assert [q['class'] for q in ra] == [q['class'] for q in rb]
    assert max(abs(p['prob'] - q['prob']) for p, q in zip(ra, rb)) <= 1e-4

@pytest.mark.parametrize('args,msg', [
    (['export', '{run}'], 'add --onnx'),
    (['export', '{run}', '--onnx', '--out', '{tmp}/m.bin'], 'must end in .onnx'),
    (['export', '{tmp}/nothing', '--onnx'], 'is not a dynblocks model'),
    (['predict', '{tmp}/nothing.onnx', '{img}'], 'No ONNX file at'),
])
def test_export_errors_exit_2(trained, tmp_path, capsys, args, msg):
    from dynblocks.cli import main
    from dynblocks.cifar import sample_path
    img = next(sample_path().rglob('*.png'))
    with pytest.raises(SystemExit) as e: main([a.format(run=trained, tmp=tmp_path, img=img) for a in args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and msg in err and len(err.strip().splitlines()) == 1, err

def test_bad_onnx_file_is_one_line(tmp_path, cli):
    from dynblocks.cifar import sample_path
    bad = tmp_path/'model.onnx'; bad.write_bytes(os.urandom(500))
    r = cli('predict', bad, next(sample_path().rglob('*.png')))  # stderr at the file-descriptor level: onnxruntime's own logging counts
    assert r.returncode == 2 and 'is not a readable ONNX file' in r.stderr and 'dynblocks export RUN --onnx' in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr

def test_custom_operator_is_refused(tmp_path):
    "A file that asks for an operator outside ONNX (a custom-op library's): onnxruntime loads no such library, the file is refused"
    import onnx
    from onnx import helper, TensorProto
    from dynblocks.export import load_onnx
    g = helper.make_graph([helper.make_node('Evil', ['image'], ['logits'], domain='com.example')], 'g',
                          [helper.make_tensor_value_info('image', TensorProto.FLOAT, [1, 3, 32, 32])],
                          [helper.make_tensor_value_info('logits', TensorProto.FLOAT, [1, 10])])
    p = helper.make_model(g, opset_imports=[helper.make_opsetid('', 18), helper.make_opsetid('com.example', 1)])
    p.metadata_props.add(key='dynblocks', value=json.dumps({**META, 'format': 'dynblocks-onnx-1', 'batch': 1}))
    onnx.save(p, tmp_path/'evil.onnx')
    with pytest.raises(DynblocksError, match='evil.onnx is not a readable ONNX file'): load_onnx(tmp_path/'evil.onnx')

@pytest.mark.parametrize('arch,bn_after', [('dyn_tiny', {'ReduceSum': 3}), ('dyn_res4', {}), ('dyn_pool4', {'ReduceSum': 4}), ('dyn_deep11', {'Add': 11}),
                                           ('se_resnet', {})])
def test_batchnorm_folded_into_convs(tmp_path, arch, bn_after):
    "Every BatchNorm right after a conv is folded; one after the branch sum ('after') or the residual add ('after_add') stays"
    from dynblocks.export import export_onnx
    fn = export_onnx(model_with_stats(arch), tmp_path/'m.onnx')  # checked against PyTorch within 1e-4
    ops, bn_inputs, _ = graph(fn)
    assert dict(bn_inputs) == bn_after, (ops, bn_inputs)

def test_fixed_batch_aggregates_linear_branches(tmp_path):
    "dyn_deep11's blocks have linear branches: with a fixed batch, one conv per block grouped over the batch (per-sample kernels)"
    from dynblocks.export import export_onnx, load_onnx
    from dynblocks.block import DynBlock
    m = model_with_stats('dyn_deep11')
    fn = export_onnx(m, tmp_path/'b3.onnx', batch=3)
    ops, _, groups = graph(fn)
    assert groups.count(3) == sum(isinstance(b, DynBlock) for b in m.modules()) == 11, groups
    assert ops['ReduceSum'] == 0, ops  # no weighted sum of branch outputs: the kernels were summed instead
    x = torch.randn(5, 3, 32, 32)
    with torch.no_grad(): assert (load_onnx(fn)(x) - m(x)).abs().max() <= 1e-4
