"Break the code once per test, run the test, check it fails, restore (issue 16/14 verification). Run from the repo root: python tools/break_tests.py"
import subprocess, sys, os, shutil
os.environ.update(DYNBLOCKS_DATA='/work/shared/data', CI='true')
PY = '.venv/bin/python'
cases = [
 ('tests/test_models.py::test_impl_switch_keeps_function', 'dynblocks/block.py',
  "m.impl = impl if impl != Impl.aggregate or m.linear_branches else Impl.fused", "m.impl = Impl.fused if impl == Impl.aggregate else impl"),
 ('tests/test_learner.py::test_channels_last_and_compile', 'dynblocks/learner.py',
  "    if channels_last: cbs.append(ChannelsLast())", "    if False: cbs.append(ChannelsLast())"),
 ('tests/test_learner.py::test_channels_last_and_compile', 'dynblocks/learner.py',
  "    learn = Learner(dls, model,", "    model = torch.compile(model)\n    learn = Learner(dls, model,"),
 ('tests/test_learner.py::test_one_default_for_every_path', 'dynblocks/cli.py',
  "t.add_argument('--recipe', choices=list_recipes(), default='default'", "t.add_argument('--recipe', choices=list_recipes(), default='seed000'"),
 ('tests/test_cli.py::test_train_without_dynamic_blocks_and_without_a_terminal', 'dynblocks/train.py',
  "    if any(isinstance(m, DynBlock) for m in learn.model.modules()):\n        atomic('branch_weights.png'", "    if True:\n        atomic('branch_weights.png'"),
 ('tests/test_cli.py::test_train_without_dynamic_blocks_and_without_a_terminal', 'dynblocks/train.py',
  "    if bars is None: bars = sys.stdout.isatty()", "    if bars is None: bars = True"),
 ('tests/test_cli.py::test_fp16_and_bf16_are_one_setting', 'dynblocks/cli.py',
  "t.add_argument('--bf16', dest='precision'", "t.add_argument('--bf16', dest='bf16'"),
 ('tests/test_safety.py::test_malicious_cifar_pickle_runs_nothing', 'dynblocks/cifar.py',
  "        if (module, name) in self._ALLOWED: return super().find_class(module, name)", "        return super().find_class(module, name)"),
 ('tests/test_safety.py::test_malicious_checkpoint_and_export_run_nothing', 'dynblocks/callbacks.py',
  "map_location=map_location, weights_only=True)", "map_location=map_location, weights_only=False)"),
 ('tests/test_safety.py::test_run_folder_rules', 'dynblocks/train.py',
  "    if used and not (resume or overwrite):", "    if False:"),
 ('tests/test_safety.py::test_secrets_masked_and_cpu_precision_said', 'dynblocks/core.py',
  "    return url.replace(f':{pw}@', ':***@', 1) if pw else url", "    return url"),
 ('tests/test_safety.py::test_resumed_study_never_repeats_proposals', 'dynblocks/tune.py',
  "    if n_before:  #", "    if False:  #"),
 ('tests/test_safety.py::test_images_converted_as_training_data', 'dynblocks/cifar.py',
  "    if im.mode.startswith('I') or im.mode == 'F':", "    if False:"),
 ('tests/test_safety.py::test_fuzz_random_and_truncated_files', 'dynblocks/callbacks.py',
  "{(str(e).splitlines() or [''])[0][:200]}", "{str(e).splitlines()[0][:200]}"),
 ('tests/test_safety.py::test_bugs_keep_their_traceback', 'dynblocks/cli.py',
  "    except DynblocksError as e:", "    except ValueError as e:"),
 ('tests/test_safety.py::test_predict_resizes_and_names_bad_files', 'dynblocks/export.py',
  "    if a.shape[:2] == (size, size): return a, None", "    return a, None"),
]
for test, f, old, new in cases:
    src = open(f).read()
    assert old in src, (f, old)
    open(f, 'w').write(src.replace(old, new, 1))
    try:
        r = subprocess.run([PY, '-m', 'pytest', test, '-q', '-x', '-p', 'no:cacheprovider'], capture_output=True, text=True, timeout=900)
        res = 'FAILS (good)' if r.returncode != 0 else 'PASSES (bad: cannot fail)'
    finally: open(f, 'w').write(src)
    print(f"{res:28} {test}  <- {f}: {new.strip()[:70]!r}", flush=True)
