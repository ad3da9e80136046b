"""`firework train policy`, `firework policy eval|bench`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from firework_common.errors import UsageError
from firework_common.manifest import require_round_dirs

EXIT_INTERRUPTED = 130


def _checkpoint_dir(path: Path, flag: str) -> Path:
    from firework_policy.checkpoint import CHECKPOINT_NAME

    if not (path / f"{CHECKPOINT_NAME}.json").is_file():
        raise UsageError(f"{flag} {path}: no policy checkpoint there ({CHECKPOINT_NAME}.json); "
                         f"train one with `firework train policy --out DIR`")
    return path


def _tasks(text: str | None) -> list[str] | None:
    if text is None:
        return None
    from firework_sim.tasks import parse_task_list

    return [t.name for t in parse_task_list(text)]


def _fresh(path: Path) -> Path:
    """`path`, or path-2, path-3, ... : the first that does not exist yet."""
    k = 1
    candidate = path
    while candidate.exists():
        k += 1
        candidate = path.with_name(f"{path.name}-{k}")
    return candidate


def _emit(result: dict, as_json: bool, text: str) -> None:
    print(json.dumps(result, indent=2, sort_keys=True) if as_json else text)


def register_train(train_sub: argparse._SubParsersAction) -> None:
    p = train_sub.add_parser("policy", help="train (or fine-tune) the multi-task policy on round bags")
    p.add_argument("--data", type=Path, nargs="+", required=True,
                   help="round directories: all rounds so far (D0 demos and every round since)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint directory (resumes if it has a run)")
    p.add_argument("--init", type=Path, default=None,
                   help="previous round's checkpoint: fine-tune from it (its model config and dataset "
                        "statistics are kept; --preset gives finetune_steps and finetune_lr)")
    p.add_argument("--preset", default="cpu", help="policy preset in config/policy.yaml (cpu, mid, paper, tiny)")
    p.add_argument("--steps", type=int, default=None, help="override the preset's training steps")
    p.add_argument("--weighting", choices=("sirius", "uniform"), default=None,
                   help="override config/policy.yaml weighting.mode (uniform: the unweighted baseline)")
    p.add_argument("--human-share", type=float, default=None,
                   help="override config/policy.yaml weighting.human_share (sirius mode: the share of "
                        "the loss mass on intervention steps)")
    p.add_argument("--pre-intervention-weight", type=float, default=None,
                   help="override config/policy.yaml weighting.pre_intervention_weight (sirius mode: the "
                        "per-step weight of the robot steps just before a takeover; 1 = not down-weighted)")
    p.add_argument("--seed", type=int, default=None,
                   help="override the preset's training seed (initialization, sampling, augmentation): "
                        "repeat a run with other seeds to see the spread due to training alone")
    p.add_argument("--tasks", default=None, help="comma-separated subset of tasks (default: all in the data)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on cores shared with other jobs, more threads than free "
                        "cores make training several times slower)")
    p.add_argument("--no-resume", action="store_true", help="start over even if --out has a run")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    p.set_defaults(func=cmd_train_policy)


def cmd_train_policy(args) -> int:
    import dataclasses

    import torch

    from firework_policy.config import load_policy_config
    from firework_policy.train import train_policy

    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    out = args.out.expanduser().resolve()
    if not out.parent.is_dir():
        raise UsageError(f"--out {args.out}: parent directory {out.parent} does not exist; create it first")
    if args.threads < 1:
        raise UsageError(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    pcfg = load_policy_config(args.preset)
    sirius_options = {"--human-share": ("human_share", args.human_share),
                      "--pre-intervention-weight": ("pre_intervention_weight", args.pre_intervention_weight)}
    overrides = {"mode": args.weighting, **{field: value for field, value in sirius_options.values()}}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if overrides:
        try:
            weighting = dataclasses.replace(pcfg.weighting, **overrides)
        except ValueError as exc:   # argparse already checked --weighting; the message names the field
            raise UsageError(f"weighting option: {exc}") from None
        for option, (_, value) in sirius_options.items():
            if value is not None and weighting.mode != "sirius":
                raise UsageError(f"{option} applies to sirius weighting; weighting is {weighting.mode!r} "
                                 f"(uniform weighs every step the same)")
        pcfg = dataclasses.replace(pcfg, weighting=weighting)
    if args.seed is not None:
        pcfg = dataclasses.replace(pcfg, train=dataclasses.replace(pcfg.train, seed=args.seed))
    init = _checkpoint_dir(args.init, "--init") if args.init is not None else None
    try:
        result = train_policy(require_round_dirs(args.data), out, pcfg, args.steps, init=init,
                              resume=not args.no_resume, tasks=_tasks(args.tasks))
    except KeyboardInterrupt:
        print(f"firework: interrupted; the last checkpoint in {out} resumes the run", file=sys.stderr)
        return EXIT_INTERRUPTED
    val = result["validation"]
    text = (f"trained {result['steps']} steps on {', '.join(result['tasks'])} in "
            f"{result['train_seconds']:.0f} s ({result['samples_per_s']:.0f} samples/s, "
            f"{result['torch_threads']} thread(s)) -> {out}\n"
            f"{result['parameters'] / 1e6:.2f} M parameters; final loss "
            f"{result['loss_history'][-1]['loss'] if result['loss_history'] else float('nan'):.3f}"
            + (f"; held-out loss {val['loss']:.3f}, action MSE {val['action_mse']:.4f}" if val else "")
            + "\nloss shares: " + ", ".join(f"{k} {v:.2f} ({result['label_counts'][k]} steps)"
                                            for k, v in result["label_shares"].items()))
    _emit(result, args.json, text)
    return 0


def register_policy(sub: argparse._SubParsersAction) -> None:
    pol = sub.add_parser("policy", help="evaluate or benchmark the multi-task policy")
    psub = pol.add_subparsers(dest="policy_command", required=True)

    p = psub.add_parser("eval", help="autonomous success per task in simulation (episodes recorded as bags)")
    p.add_argument("--checkpoint", type=Path, required=True, help="policy checkpoint directory")
    p.add_argument("--tasks", default=None, help="comma-separated tasks (default: all the policy knows)")
    p.add_argument("--episodes", type=int, required=True, help="episodes per task")
    p.add_argument("--workers", type=int, default=1, help="worker processes (robots), one per core")
    p.add_argument("--seed", type=int, default=None,
                   help="base seed: episode i starts from seed + i (default 100000, away from "
                        "collection's seeds); the same seed gives the same initial states")
    p.add_argument("--out", type=Path, default=None,
                   help="round directory for the recorded episodes (default: CHECKPOINT/eval-seed<SEED>, "
                        "then -2, -3, ... when it exists)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    p.set_defaults(func=cmd_policy_eval)

    p = psub.add_parser("compare", help="paired comparison of two policies evaluated on the same seeds")
    p.add_argument("--a", type=Path, nargs="+", required=True,
                   help="eval round directories of policy A (`firework policy eval --out`)")
    p.add_argument("--b", type=Path, nargs="+", required=True, help="eval round directories of policy B")
    p.add_argument("--repeats", action="store_true",
                   help="the k-th directory of --a is a repeat of the comparison with the k-th of --b "
                        "(e.g. both retrained with another seed, evaluated on the same seeds): pairs "
                        "episodes within each repeat and pools the repeats into one test")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    p.set_defaults(func=cmd_policy_compare)

    p = psub.add_parser("bench", help="latency of one batched act() for K robots; model sizes")
    p.add_argument("--preset", default="cpu")
    p.add_argument("--robots", default="1,4,8", help="comma-separated fleet sizes")
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: one core per robot process)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_policy_bench)


def cmd_policy_eval(args) -> int:
    from firework_policy.checkpoint import load_policy
    from firework_policy.evaluate import DEFAULT_EVAL_SEED, evaluate_policy

    if args.episodes <= 0:
        raise UsageError(f"--episodes must be > 0, got {args.episodes}")
    if args.workers <= 0:
        raise UsageError(f"--workers must be > 0, got {args.workers}")
    checkpoint = _checkpoint_dir(args.checkpoint.expanduser().resolve(), "--checkpoint")
    tasks = _tasks(args.tasks) or list(load_policy(checkpoint).goals.tasks)
    seed = DEFAULT_EVAL_SEED if args.seed is None else args.seed
    out = (args.out if args.out is not None else _fresh(checkpoint / f"eval-seed{seed}")).expanduser().resolve()
    if not out.parent.is_dir():
        raise UsageError(f"--out {args.out}: parent directory {out.parent} does not exist; create it first")
    if (out / "manifest.json").exists():
        raise UsageError(f"--out {out} already holds recorded episodes; choose another --out (or --seed)")
    try:
        summary = evaluate_policy(checkpoint, tasks, args.episodes, out, args.workers, seed)
    except KeyboardInterrupt:
        print(f"firework: interrupted; finished episodes are recorded in {out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    lines = [f"{'task':<20}{'episodes':>9}{'success':>9}{'mean len':>10}{'steps/s/worker':>16}"]
    for name, t in summary["tasks"].items():
        lines.append(f"{name:<20}{t['episodes']:>9}{t['success_rate']:>9.2f}{t['mean_length']:>10.1f}"
                     f"{t['steps_per_s_per_worker']:>16.1f}")
    lines.append(f"average success {summary['average_success']:.2f} over {summary['episodes']} episodes "
                 f"(seeds {seed}+) in {summary['wall_s']:.0f} s -> {out}")
    _emit(summary, args.json, "\n".join(lines))
    return 0


def cmd_policy_compare(args) -> int:
    from firework_policy.compare import compare_outcomes, load_outcomes, load_repeated_outcomes

    a_dirs, b_dirs = require_round_dirs(args.a), require_round_dirs(args.b)
    if args.repeats:
        if len(a_dirs) != len(b_dirs):
            raise UsageError(f"--repeats pairs the k-th --a with the k-th --b; got {len(a_dirs)} --a and "
                             f"{len(b_dirs)} --b directories")
        result = compare_outcomes(*load_repeated_outcomes(a_dirs, b_dirs))
    else:
        result = compare_outcomes(load_outcomes(a_dirs), load_outcomes(b_dirs))
    result["a"], result["b"] = [str(p) for p in args.a], [str(p) for p in args.b]
    lines = [f"{'task':<20}{'pairs':>6}{'A':>7}{'B':>7}{'A only':>8}{'B only':>8}{'p (A>B)':>9}{'p (2-sided)':>12}"]
    rows = [*result["tasks"].items(),
            *((f"repeat {k} ({args.a[k].name})", r) for k, r in result.get("repeats", {}).items()),
            ("overall", result["overall"])]
    for name, r in rows:
        lines.append(f"{name:<20}{r['pairs']:>6}{r['rate_a']:>7.2f}{r['rate_b']:>7.2f}{r['a_only']:>8}"
                     f"{r['b_only']:>8}{r['p_a_better']:>9.3f}{r['p_two_sided']:>12.3f}")
    if result["unpaired_a"] or result["unpaired_b"]:
        lines.append(f"left out: {result['unpaired_a']} episode(s) of A and {result['unpaired_b']} of B "
                     f"without a partner (different seeds or episode counts)")
    _emit(result, args.json, "\n".join(lines))
    return 0


def cmd_policy_bench(args) -> int:
    import torch

    from firework_policy.bench import bench_policy
    from firework_policy.config import load_policy_config

    try:
        robots = [int(r) for r in args.robots.split(",")]
    except ValueError:
        raise UsageError(f"--robots must be comma-separated integers, got {args.robots!r}") from None
    if args.threads < 1 or any(r < 1 for r in robots):
        raise UsageError("--threads and --robots must be >= 1")
    torch.set_num_threads(args.threads)
    result = bench_policy(load_policy_config(args.preset).model, robots, args.repeats)
    result["preset"] = args.preset
    sizes = result["parameters"]
    lines = [f"preset {args.preset}: {sizes['total'] / 1e6:.2f} M parameters (camera encoders "
             f"{sizes['camera_encoders'] / 1e6:.2f} M, transformer {sizes['transformer'] / 1e6:.2f} M), "
             f"context {result['context']}, {result['threads']} thread(s)"]
    for k, r in result["ticks"].items():
        lines.append(f"  {k} robots: act() p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms")
    _emit(result, args.json, "\n".join(lines))
    return 0
