"""``warpfields train MESH --out FIELD``: fit a hybrid field to a mesh's signed distance."""

from ..fields.hybrid_config import ENCODINGS, PRESETS


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train a hybrid SDF of a mesh (or an analytic shape)")
    p.add_argument("mesh", help="OBJ/PLY/STL/OFF/USD file, 'bunny' (Warp's bundled asset), or 'sphere'/'torus'")
    p.add_argument("--out", required=True, help="field file to write (.wfield)")
    p.add_argument("--preset", default="fast", choices=sorted(PRESETS), help="field size and training length")
    p.add_argument("--encoding", default="hash", choices=ENCODINGS)
    p.add_argument("--steps", type=int, default=None, help="override the preset's optimiser steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prim", default=None, help="USD prim path of the mesh (default: the first Mesh prim)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..distributed import run_command

    return run_command(args, run_rank)


def run_rank(args, ranks) -> int:
    """The command on each rank of a job (one rank without ``torchrun``); rank 0 writes and prints."""
    from ..fields.hybrid_config import preset_config
    from ..io.atomic import check_output_path
    from ..io.fieldfile import save_field
    from ..targets import load_target
    from ..torch.train import settings_for, train_field

    with ranks.checkpoint():
        if ranks.rank == 0:
            check_output_path(args.out, "field file")
        target = load_target(args.mesh, prim=args.prim)
    settings = settings_for(args.preset, args.steps)
    config = preset_config(args.preset, dim=target.dim, encoding=args.encoding)
    field, report = train_field(target, config, settings, seed=args.seed, device=args.device, group=ranks.group)
    if ranks.rank != 0:
        return 0
    field.metadata["training"]["source"] = args.mesh
    field.metadata["training"]["preset"] = args.preset
    save_field(field, args.out)
    print(f"trained {args.preset} {args.encoding} field of {args.mesh} in {report['seconds']:.1f} s -> {args.out}")
    print(f"  mean |f - sdf| near the surface:      {report['near_surface_mean_abs_error']:.5f} (normalised units)")
    if "level_set_two_sided_distance" in report:
        print(f"  level set to mesh, two-sided mean:    {report['level_set_two_sided_distance']:.5f}")
    return 0
