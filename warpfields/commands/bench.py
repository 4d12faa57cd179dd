"""``warpfields bench``: field evaluation, operator, training and baseline throughput on the current device."""


def register(subparsers) -> None:
    p = subparsers.add_parser("bench", help="throughput of values, gradients, polyfit and training, with baselines")
    p.add_argument("--preset", default="fast", help="field size to measure (tiny, fast, paper); default fast")
    p.add_argument("--field", default=None, help="measure this hybrid field file instead of a fresh preset field")
    p.add_argument("--points", type=int, default=1 << 20, help="random points per value measurement")
    p.add_argument("--paper-queries", type=int, default=20_000, help="queries for the paper-style torch polyfit")
    p.add_argument(
        "--reference",
        default=None,
        help="reference kernel file to compare with (default ../shared/tools/reference_kernel.py beside the "
        "repository, skipped with a note when missing)",
    )
    p.add_argument("--json", default=None, help="also write the figures as JSON (one key per figure)")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from ..bench import format_figures, run_bench
    from ..errors import InputError
    from ..fields.hybrid import PRESETS, HybridField
    from ..io.atomic import atomic_path, check_output_path
    from ..io.fieldfile import load_field

    if args.preset not in PRESETS:
        raise InputError(f"--preset {args.preset!r}: expected one of {sorted(PRESETS)}")
    if args.points < 1024 or args.paper_queries < 1:
        raise InputError(f"--points {args.points} / --paper-queries {args.paper_queries}: need >= 1024 and >= 1")
    if args.json:
        check_output_path(args.json, "json output")
    field = None
    if args.field:
        field = load_field(args.field)
        if not isinstance(field, HybridField):
            raise InputError(f"--field {args.field}: a hybrid field file expected, got a {field.kind} field")
    figures = run_bench(
        field, args.preset, args.points, args.paper_queries, device=args.device, reference_kernel=args.reference
    )
    print(format_figures(figures))
    if args.json:
        with atomic_path(args.json, "json output") as tmp:
            tmp.write_text(json.dumps(figures, indent=2))
    return 0
