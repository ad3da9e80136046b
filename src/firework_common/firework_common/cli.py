"""`firework` command line: one entry point, one thin subcommand per job.

User errors (FireworkError) print one line `firework: error: ...` and exit 2; no traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from firework_common.errors import FireworkError, UsageError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def _add_collect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("collect", help="record simulated episodes (operator demos or imperfect policy "
                                       "with takeovers) as rosbag2 files")
    p.add_argument("--tasks", default="Lift,Stack,PickPlaceCan,NutAssemblySquare,Door",
                   help="comma-separated task names (default: all five)")
    p.add_argument("--episodes", type=int, required=True, help="episodes per task")
    p.add_argument("--out", type=Path, required=True, help="round directory (created; its parent must exist)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (robots), one per core")
    p.add_argument("--policy", choices=("operator", "imperfect", "learned"), default="operator",
                   help="who acts from reset: the scripted operator (demos), the imperfect policy, or a "
                        "trained policy (--checkpoint)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="with --policy learned: the policy checkpoint directory")
    p.add_argument("--takeover-after", default=None, metavar="S",
                   help="with --policy imperfect|learned: the operator takes over after S steps (or LOW-HIGH)")
    p.add_argument("--takeover-on-failure", action="store_true",
                   help="with --policy imperfect|learned: the operator supervises and takes over when the robot "
                        "goes wrong (stalls, regresses, runs out of time); the labels failure "
                        "prediction learns from")
    p.add_argument("--visual-change", default=None, metavar="NAME",
                   help="record with a visual change never seen in training: lighting, camera or color "
                        "(for OOD evaluation)")
    p.add_argument("--seed", type=int, default=0, help="base seed; episode i uses seed+i")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    p.set_defaults(func=cmd_collect)


def cmd_collect(args: argparse.Namespace) -> int:
    from firework_sim.collect import CollectSettings, TakeoverSpec, collect, summarize
    from firework_sim.config import load_operator_config, load_sim_config
    from firework_sim.robot_env import check_gl_backend
    from firework_sim.tasks import parse_task_list
    from firework_sim.visual_changes import VISUAL_CHANGES

    tasks = parse_task_list(args.tasks)
    if args.episodes <= 0:
        raise UsageError(f"--episodes must be > 0, got {args.episodes}")
    if args.workers <= 0:
        raise UsageError(f"--workers must be > 0, got {args.workers}")
    out = args.out.expanduser().resolve()
    if not out.parent.is_dir():
        raise UsageError(f"--out {args.out}: parent directory {out.parent} does not exist; create it first")
    takeover = None
    if (args.policy == "learned") != (args.checkpoint is not None):
        raise UsageError("--policy learned needs --checkpoint DIR, and --checkpoint only applies to it")
    if args.takeover_after is not None:
        if args.policy == "operator":
            raise UsageError("--takeover-after only applies to --policy imperfect or learned")
        try:
            takeover = TakeoverSpec.parse(args.takeover_after)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if args.takeover_on_failure and args.policy == "operator":
        raise UsageError("--takeover-on-failure only applies to --policy imperfect or learned")
    if args.visual_change is not None and args.visual_change not in VISUAL_CHANGES:
        raise UsageError(f"unknown --visual-change {args.visual_change!r}; available: "
                         f"{', '.join(VISUAL_CHANGES)}")
    sim_cfg = load_sim_config()
    check_gl_backend(sim_cfg.render.gl_backend)
    actor_factory = None
    if args.policy == "learned":
        from firework_policy.evaluate import learned_actor_factory

        actor_factory = learned_actor_factory(args.checkpoint.expanduser().resolve(), [t.name for t in tasks],
                                              sim_cfg)
    settings = CollectSettings(sim_cfg, load_operator_config(), args.policy, takeover,
                               args.takeover_on_failure, args.visual_change, actor_factory)

    from tqdm import tqdm

    total = args.episodes * len(tasks)
    records = []
    t0 = time.perf_counter()
    bar = tqdm(total=total, desc="collect", unit="ep", file=sys.stderr, dynamic_ncols=True)
    try:
        for rec in collect(out, tasks, args.episodes, settings, args.workers, args.seed):
            records.append(rec)
            wall = time.perf_counter() - t0
            bar.set_postfix_str(f"{rec['task']} {rec['outcome']} | "
                                f"{sum(r['steps'] for r in records) / wall:.0f} steps/s")
            bar.update(1)
    except KeyboardInterrupt:
        bar.close()
        print(f"firework: interrupted; {len(records)} finished episodes are recorded in {out}",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        bar.close()
    summary = summarize(records, time.perf_counter() - t0, args.workers)
    summary["out"] = str(out)
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        _print_collect_summary(summary)
    return 0


def _print_collect_summary(summary: dict) -> None:
    print(f"{'task':<20}{'episodes':>9}{'success':>9}{'mean len':>10}{'human %':>9}{'takeovers':>10}"
          f"{'steps/s/worker':>16}")
    for name, t in summary["tasks"].items():
        print(f"{name:<20}{t['episodes']:>9}{t['success_rate']:>9.2f}{t['mean_length']:>10.1f}"
              f"{100 * t['human_step_ratio']:>9.1f}{t['takeovers']:>10}{t['steps_per_s_per_worker']:>16.1f}")
    print(f"{summary['episodes']} episodes, {summary['total_steps']} steps in {summary['wall_s']:.1f} s "
          f"({summary['steps_per_s']:.1f} steps/s with {summary['workers']} worker(s)) -> {summary['out']}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="firework", description="FIREWORK multi-task fleet learning")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_collect(sub)
    # Subcommands of other packages register themselves; their heavy imports stay inside commands.
    from firework_monitor import cli as monitor_cli
    from firework_policy import cli as policy_cli

    train = sub.add_parser("train", help="train models").add_subparsers(dest="train_command", required=True)
    monitor_cli.register_train(train)
    policy_cli.register_train(train)
    monitor_cli.register_monitor(sub)
    policy_cli.register_policy(sub)
    bench = sub.add_parser("bench", help="benchmarks").add_subparsers(dest="bench_command", required=True)
    monitor_cli.register_bench(bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except FireworkError as exc:
        print(f"firework: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:
        # Disk full, permission denied, ...: the recorded episodes are closed already.
        print(f"firework: error: {exc.strerror or exc}: {exc.filename or ''}; "
              f"finished episodes are kept", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
