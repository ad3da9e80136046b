"""`firework train world-model`, `firework monitor fit|fit-threshold|eval`, `firework bench monitor`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from firework_common.errors import UsageError
from firework_common.manifest import require_round_dirs


def _emit(result: dict, as_json: bool, text: str | None = None) -> None:
    if as_json:
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(text if text is not None else json.dumps(result, indent=2, sort_keys=True))


def register_train(train_sub: argparse._SubParsersAction) -> None:
    p = train_sub.add_parser("world-model", help="train the visual world model on round bags")
    p.add_argument("--data", type=Path, nargs="+", required=True, help="round directories")
    p.add_argument("--out", type=Path, required=True, help="checkpoint directory (resumes if it has one)")
    p.add_argument("--preset", default="cpu", help="world model preset in config/monitor.yaml")
    p.add_argument("--steps", type=int, default=None, help="override the preset's training steps")
    p.add_argument("--no-resume", action="store_true", help="start over even if --out has a checkpoint")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's choice; 1 when other jobs share the cores)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train_world_model)


def cmd_train_world_model(args) -> int:
    from firework_monitor.config import load_monitor_config
    from firework_monitor.train_world_model import train_world_model

    import torch

    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    mcfg = load_monitor_config(args.preset)
    result = train_world_model(require_round_dirs(args.data), args.out, mcfg, args.steps, resume=not args.no_resume)
    held = result["held_out"]
    text = (f"trained {result['steps']} steps ({result['train_seconds']:.0f} s) -> {args.out}\n"
            f"held-out: latent MSE {held.get('latent_mse', float('nan')):.5f} vs repeat-last "
            f"{held.get('repeat_last_latent_mse', float('nan')):.5f} "
            f"(ratio {held.get('latent_mse_ratio_vs_repeat', float('nan')):.3f}), "
            f"reconstruction PSNR {held.get('reconstruction_psnr_db', float('nan')):.2f} dB")
    _emit(result, args.json, text)
    return 0


def register_monitor(sub: argparse._SubParsersAction) -> None:
    mon = sub.add_parser("monitor", help="error predictors on a frozen world model")
    msub = mon.add_subparsers(dest="monitor_command", required=True)

    p = msub.add_parser("fit", help="fit per-task failure classifiers, OOD detectors and p_H")
    p.add_argument("--world-model", type=Path, required=True, help="world model checkpoint directory")
    p.add_argument("--data", type=Path, nargs="+", required=True,
                   help="round directories, oldest first; the last is the newest round")
    p.add_argument("--out", type=Path, required=True, help="where the predictors checkpoint goes")
    p.add_argument("--previous", type=Path, default=None,
                   help="last round's predictors: fine-tune their classifiers on the newest round")
    p.add_argument("--tasks", default=None, help="comma-separated subset of tasks")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_monitor_fit)

    p = msub.add_parser("fit-threshold", help="fit theta = a + b exp(-c p_H) from episodes of several tasks")
    p.add_argument("--world-model", type=Path, required=True)
    p.add_argument("--predictors", type=Path, required=True, help="predictors directory (updated in place)")
    p.add_argument("--data", type=Path, nargs="+", required=True, help="rounds with takeovers")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_monitor_fit_threshold)

    p = msub.add_parser("eval", help="offline: AUROC, flag precision/recall, lead time on recorded episodes")
    p.add_argument("--world-model", type=Path, required=True)
    p.add_argument("--predictors", type=Path, required=True)
    p.add_argument("--data", type=Path, nargs="+", required=True, help="held-out rounds")
    p.add_argument("--ood-data", type=Path, nargs="*", default=[],
                   help="rounds with visual changes never seen in training (for OOD AUROC)")
    p.add_argument("--window", type=int, default=None, help="steps before an event a flag may come")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_monitor_eval)


def _load_pair(args):
    from firework_monitor.predictors import ErrorPredictors
    from firework_monitor.train_world_model import load_world_model

    model, _ = load_world_model(args.world_model)
    return model, ErrorPredictors.load(args.predictors, model)


def cmd_monitor_fit(args) -> int:
    from firework_monitor.config import load_monitor_config
    from firework_monitor.predictors import ErrorPredictors, fit_predictors_on_rounds
    from firework_monitor.train_world_model import load_world_model

    model, wm_meta = load_world_model(args.world_model)
    mcfg = load_monitor_config(wm_meta.get("preset", "cpu"))
    previous = ErrorPredictors.load(args.previous, model) if args.previous else None
    tasks = args.tasks.split(",") if args.tasks else None
    predictors, report = fit_predictors_on_rounds(model, require_round_dirs(args.data), mcfg, previous, tasks)
    predictors.save(args.out, {"rounds": [str(p) for p in args.data], "world_model": str(args.world_model),
                               "report": report})
    _emit(report, args.json)
    return 0


def cmd_monitor_fit_threshold(args) -> int:
    from firework_monitor.data import load_rounds
    from firework_monitor.fit_threshold import fit_adaptive_threshold
    from firework_monitor.predictors import with_threshold

    model, predictors = _load_pair(args)
    cfg, report = fit_adaptive_threshold(model, predictors, load_rounds(require_round_dirs(args.data)))
    with_threshold(predictors, cfg).save(args.predictors, {"threshold_fit": report})
    _emit(report, args.json)
    return 0


def cmd_monitor_eval(args) -> int:
    from firework_monitor.data import load_rounds
    from firework_monitor.evaluate import evaluate_monitor

    model, predictors = _load_pair(args)
    episodes = load_rounds(require_round_dirs(args.data))
    ood_eps = load_rounds(require_round_dirs(args.ood_data)) if args.ood_data else []
    result = evaluate_monitor(model, predictors, episodes, ood_eps, args.window)
    _emit(result, args.json)
    return 0


def register_bench(bench_sub: argparse._SubParsersAction) -> None:
    p = bench_sub.add_parser("monitor", help="latency of one fleet tick and OOD scoring cost")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--robots", default="1,4,8", help="comma-separated fleet sizes")
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench_monitor)


def cmd_bench_monitor(args) -> int:
    from firework_monitor.bench import bench_monitor
    from firework_monitor.config import load_monitor_config

    try:
        robots = [int(r) for r in args.robots.split(",")]
    except ValueError:
        raise UsageError(f"--robots must be comma-separated integers, got {args.robots!r}") from None
    result = bench_monitor(load_monitor_config(args.preset), robots, args.repeats)
    lines = [f"preset {result['preset']}, {result['threads']} threads, N={result['futures']} futures, "
             f"L={result['horizon']} steps; matmul {result['matmul_gflops']:.1f} GFLOP/s"]
    for k, r in result["ticks"].items():
        lines.append(f"  {k} robots: batched p50 {r['batched']['p50_ms']:.1f} ms p99 {r['batched']['p99_ms']:.1f} ms"
                     f" | per-robot loop p50 {r['per_robot_loop']['p50_ms']:.1f} ms"
                     f" | {r['achieved_gflops']:.1f} GFLOP/s")
    for k, v in result["ood_scoring"].items():
        if isinstance(v, dict):
            lines.append(f"  OOD {k}: p50 {v['p50_ms']:.3f} ms" +
                         (f" (k-means {v['kmeans_speedup_p50']:.0f}x faster)" if "kmeans_speedup_p50" in v else ""))
    _emit(result, args.json, "\n".join(lines))
    sys.stdout.flush()
    return 0
