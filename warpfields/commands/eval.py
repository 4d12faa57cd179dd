"""``warpfields eval FIELD --mesh MESH``: the paper's operator comparison table."""


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="compare ad, fd and polyfit normals/curvature against a mesh or shape")
    p.add_argument("field", help="field file (a fine-tuned file also shows its original's rows when that file exists)")
    p.add_argument("--mesh", required=True, help="reference mesh file, 'bunny', or an analytic shape word")
    p.add_argument("--prim", default=None, help="USD prim path of the mesh")
    p.add_argument("--points", type=int, default=20000, help="surface points to evaluate at")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the table as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..distributed import run_command

    return run_command(args, run_rank)


def run_rank(args, ranks) -> int:
    """The command on each rank of a job (one rank without ``torchrun``): the queries are split over the ranks,
    rank 0 prints and writes the table."""
    from pathlib import Path

    from ..errors import InputError
    from ..evaluate import default_rows, evaluate_rows, format_table, reference_on_surface, write_json
    from ..io.atomic import check_output_path
    from ..io.fieldfile import load_field
    from ..ops.host import OperatorSpec
    from ..targets import load_target

    if args.points < 1:
        raise InputError(f"--points {args.points}: must be at least 1")
    with ranks.checkpoint():
        if args.json and ranks.rank == 0:
            check_output_path(args.json, "json output")
        field = load_field(args.field)
        target = load_target(args.mesh, prim=args.prim)
    if target.dim != field.dim:
        raise InputError(f"field {args.field} is {field.dim}D but the reference {args.mesh} is {target.dim}D")
    reference = reference_on_surface(target, args.points, args.seed, args.device)
    rows = default_rows(field, seed=args.seed)
    original = field.metadata.get("finetune", {}).get("original_file")
    # Every rank must take the same path: the original's rows need its file on every rank.
    if ranks.everywhere(bool(original) and Path(original).is_file()):
        with ranks.checkpoint():
            before = load_field(original)
        before_rows = default_rows(before, seed=args.seed)
        for row in before_rows:
            row.label = f"original: {row.label}"
        for row in rows:
            row.label = f"tuned: {row.label}"
        evaluate_rows(before, reference, before_rows, args.device, ranks.group)
        rows = [r for r in before_rows if r.spec.method != "fd"] + [
            r for r in rows if r.spec.method == "ad" or r.spec == OperatorSpec.for_field(field, k=64, seed=args.seed)
        ]
        evaluate_rows(field, reference, [r for r in rows if r.label.startswith("tuned")], args.device, ranks.group)
    else:
        evaluate_rows(field, reference, rows, args.device, ranks.group)
    if ranks.rank != 0:
        return 0
    print(f"{args.field} against {args.mesh}: {args.points} surface points (field units)")
    print(format_table(rows))
    if args.json:
        write_json(rows, args.json, {"field": str(args.field), "mesh": args.mesh, "points": args.points})
    return 0
