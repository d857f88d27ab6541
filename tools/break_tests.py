"Break the code once per test, run the test, check it fails, restore. Run from the repo root: python tools/break_tests.py [substring of the test to keep]"
import subprocess, sys, os, shutil, signal
signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))  # a killed run still restores the file it broke (finally)
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
 # issue 15: presets and recipes as the reports state them
 ('tests/test_reports.py::test_params_and_flops_hand_count', 'dynblocks/models.py',
  "Dyn(128, ks=5, stride=2, padding=2)", "Dyn(128, ks=5, padding=2)"),
 ('tests/test_reports.py::test_report_statements', 'dynblocks/models.py',
  "Dyn(128, ks=5, stride=2, padding=2)", "Dyn(128, ks=5, padding=2)"),
 ('tests/test_reports.py::test_params_and_flops_hand_count', 'dynblocks/models.py',
  "block = dict(n_branches=3, norm='after_add', act='after_add'", "block = dict(n_branches=3, norm='branch', act='after_add'"),
 ('tests/test_reports.py::test_report_statements', 'dynblocks/models.py',
  "**{**dict(n_branches=4, residual=True, init='kaiming'), **kwargs}", "**{**dict(n_branches=4, residual=True), **kwargs}"),
 ('tests/test_reports.py::test_schedule_matches_pytorch', 'dynblocks/learner.py',
  "one_cycle_lr(r.pct_start or 0.3,", "one_cycle_lr(r.pct_start or 0.25,"),
 ('tests/test_reports.py::test_schedule_matches_pytorch', 'dynblocks/learner.py',
  "(cos_anneal_lr(r.t_max or n, r.eta_min), 'epoch')", "(cos_anneal_lr(r.t_max or n, r.eta_min), 'batch')"),
 ('tests/test_reports.py::test_schedule_matches_pytorch', 'dynblocks/optim.py',
  "    if step < warmup: return step / max(1, warmup)", "    if step < warmup: return (step + 1) / max(1, warmup)"),
 ('tests/test_reports.py::test_optimiser_matches_pytorch', 'dynblocks/optim.py',
  "eps=1e-8 if eps is None else eps", "eps=1e-5 if eps is None else eps"),
 ('tests/test_reports.py::test_optimiser_matches_pytorch', 'dynblocks/recipes.py',
  "Recipe('seed003', 'dyn_deep11', '003', lib='torch'", "Recipe('seed003', 'dyn_deep11', '003', lib='fastai'"),
 ('tests/test_reports.py::test_fastai_variant_uses_fastai_defaults', 'dynblocks/recipes.py',
  "    return replace(r, name=f'{r.name}_fastai', lib='fastai'", "    return replace(r, name=f'{r.name}_fastai', lib='torch'"),
 # issue 18: dynamize
 ('tests/test_dynamize.py::test_equal_at_creation_and_weights_kept', 'dynblocks/dynamize.py',
  "delta = (eps - eps.mean(0)) *", "delta = eps *"),
 ('tests/test_dynamize.py::test_train_eval_channels_last', 'dynblocks/dynamize.py',
  "(noise * w.float().std().clamp_min(1e-8))", "(0 * w.float().std().clamp_min(1e-8))"),
 ('tests/test_dynamize.py::test_compile_and_export', 'dynblocks/dynamize.py',
  "        return y.sum(2).reshape(B, nf, H, W)", "        return y.sum(2).reshape(int(B), nf, H, W)"),
 ('tests/test_dynamize.py::test_conv_options_and_errors', 'dynblocks/dynamize.py',
  "w = self.weight.reshape(L, g, nf//g, *self.weight.shape[1:]).transpose(0, 1).reshape(", "w = self.weight.reshape(L, g, nf//g, *self.weight.shape[1:]).reshape("),
 ('tests/test_dynamize.py::test_vision_learner_frozen_body_gets_the_new_parameters', 'dynblocks/learner.py',
  "    learn.opt = None  # rebuilt", "    pass  # rebuilt"),
 # issue 17: CPU speedrun, ablation, overheads
 ('tests/test_models.py::test_whitening_stem_set_once_from_the_first_training_batch', 'dynblocks/models.py',
  "        self.ready.fill_(True)", "        pass"),
 ('tests/test_models.py::test_whitening_stem_set_once_from_the_first_training_batch', 'dynblocks/models.py',
  "        if self.training and not self.ready: self.init_from(x)", "        if not self.ready: self.init_from(x)"),
 ('tests/test_models.py::test_forward_backward', 'dynblocks/models.py',
  "*pool, nn.BatchNorm2d(nf), act()), nf", "*pool, nn.BatchNorm2d(nf).requires_grad_(False), act()), nf"),
 ('tests/test_bench.py::test_speedrun_benchmark_parts_smoke', 'bench/speedrun.py',
  "    return min(cands, key=", "    return 1.0 or min(cands, key="),
 ('tests/test_bench.py::test_speedrun_benchmark_parts_smoke', 'dynblocks/train.py',
  "    if r.tta == 'flip' and num_distrib() <= 1", "    if False and num_distrib() <= 1"),
 ('tests/test_onnx.py::test_batchnorm_folded_into_convs', 'dynblocks/export.py',
  "                                 verbose=False)", "                                 verbose=False, optimize=False)"),
 ('tests/test_onnx.py::test_fixed_batch_aggregates_linear_branches', 'dynblocks/export.py',
  "'fused' if batch is None else 'aggregate')", "'fused')"),
 ('tests/test_onnx.py::test_export_then_predict_through_both', 'dynblocks/cli.py',
  "    if p.suffix == '.onnx':", "    if False:"),
 ('tests/test_learner.py::test_slow_on_cpu_note', 'dynblocks/learner.py',
  "    if t <= SLOW_EPOCH: return None", "    return None"),
 ('tests/test_learner.py::test_recipe_n_train_is_a_cap_a_run_can_override', 'dynblocks/train.py',
  "    if n_train is None and r.n_train is not None and r.n_train < len(arrays['train'][1]): n_train = r.n_train", "    pass"),
 # issue 26, point 2: CLI output (the recorder kept across the TTA and the legend guard are checked in nbs/11 and nbs/09)
 ('tests/test_cli.py::test_train_output_one_table_no_warnings', 'dynblocks/train.py',
  "        if not self.in_fit: return", "        pass"),
 ('tests/test_cli.py::test_train_output_one_table_no_warnings', 'dynblocks/train.py',
  "for x in self.recorder.log))", "for x in [self.epoch] + list(self.recorder.values[-1])))"),
 ('tests/test_cli.py::test_progress_bar_on_a_terminal', 'dynblocks/train.py',
  "    if bars is None: bars = sys.stdout.isatty()", "    if bars is None: bars = False"),
 ('tests/test_cli.py::test_cpu_estimate_is_a_line_not_a_warning', 'dynblocks/train.py',
  "        warnings.simplefilter('always', SlowOnCPUWarning)", "        warnings.simplefilter('error', SlowOnCPUWarning)"),
]
only = sys.argv[1] if len(sys.argv) > 1 else ''
cases = [c for c in cases if only in c[0]]
for test, f, old, new in cases:
    src = open(f).read()
    assert old in src, (f, old)
    open(f, 'w').write(src.replace(old, new, 1))
    try:
        r = subprocess.run([PY, '-m', 'pytest', test, '-q', '-x', '-p', 'no:cacheprovider'], capture_output=True, text=True, timeout=900)
        res = 'FAILS (good)' if r.returncode != 0 else 'PASSES (bad: cannot fail)'
    finally: open(f, 'w').write(src)
    print(f"{res:28} {test}  <- {f}: {new.strip()[:70]!r}", flush=True)
