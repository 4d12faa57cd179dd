"""``warpfields finetune FIELD --out TUNED``: make the field's plain autodiff gradient accurate."""

from ..fields.hybrid_config import PRESETS
from ..ops.host import STENCILS


def register(subparsers) -> None:
    p = subparsers.add_parser("finetune", help="self-supervised fine-tuning of a hybrid field's gradient")
    p.add_argument("field", help="hybrid field file")
    p.add_argument("--out", required=True, help="tuned field file to write")
    p.add_argument("--preset", default="fast", choices=sorted(PRESETS))
    p.add_argument("--target", default=None, choices=("polyfit", "fd", "mesh"), help="where target normals come from")
    p.add_argument("--mesh", default=None, help="mesh (or shape word) for --target mesh")
    p.add_argument("--w", type=float, default=None, help="weight of the normal term (paper: 1)")
    p.add_argument("--lr", type=float, default=None, help="Adam learning rate (paper: 2e-4)")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--k", type=int, default=None, help="polyfit samples for the targets")
    p.add_argument("--sigma", type=float, default=None, help="polyfit scale for the targets (field units)")
    p.add_argument("--stencil", default=None, choices=list(STENCILS))
    p.add_argument("--h", type=float, default=None, help="finite-difference step for --target fd")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..distributed import run_command

    return run_command(args, run_rank)


def run_rank(args, ranks) -> int:
    """The command on each rank of a job (one rank without ``torchrun``); rank 0 writes and prints."""
    from ..errors import InputError
    from ..io.atomic import check_output_path
    from ..io.fieldfile import load_field, save_field
    from ..targets import load_target
    from ..torch.finetune import file_digest, finetune_field, finetune_settings_for

    settings = finetune_settings_for(
        args.preset,
        target=args.target,
        weight=args.w,
        learning_rate=args.lr,
        steps=args.steps,
        k=args.k,
        sigma=args.sigma,
        stencil=args.stencil,
        h=args.h,
    )
    with ranks.checkpoint():
        if ranks.rank == 0:
            check_output_path(args.out, "tuned field file")
        field = load_field(args.field)
        if field.kind != "hybrid":
            raise InputError(
                f"field {args.field!r}: fine-tuning needs a hybrid field file; this is a field of kind {field.kind!r} "
                f"(make one with: warpfields train {args.field} --out FIELD.wfield)"
            )
        mesh = load_target(args.mesh) if args.mesh else None
        provenance = {"original_file": str(args.field), "original_sha256": file_digest(args.field)}
    tuned, report = finetune_field(
        field, settings, seed=args.seed, device=args.device, mesh=mesh, provenance=provenance, group=ranks.group
    )
    if ranks.rank != 0:
        return 0
    save_field(tuned, args.out)
    print(f"fine-tuned {args.field} in {report['seconds']:.1f} s -> {args.out}")
    print(f"  final losses: value {report['value_loss']:.2e}, normal {report['normal_loss']:.2e}")
    if "level_set_motion" in report:
        print(f"  zero level set moved {report['level_set_motion']:.2e} (two-sided mean distance, field units)")
    return 0
