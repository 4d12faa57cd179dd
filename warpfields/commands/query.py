"""``warpfields query FIELD --points P.npy --quantity Q --method M --out OUT.npy``."""

QUANTITIES = ("value", "gradient", "normal", "hessian", "laplacian", "mean-curvature")


def register(subparsers) -> None:
    p = subparsers.add_parser("query", help="derivatives of a field at your points (.npy in, .npy out)")
    p.add_argument("field", help="field file, or an analytic shape word")
    p.add_argument("--points", required=True, help=".npy file of shape (N, dim), float32 or float64")
    p.add_argument("--quantity", required=True, choices=QUANTITIES)
    p.add_argument("--method", default="polyfit", choices=("ad", "fd", "polyfit"))
    p.add_argument("--k", type=int, default=None, help="polyfit samples (default 32)")
    p.add_argument("--sigma", type=float, default=None, help="polyfit scale, in the points' units")
    p.add_argument("--stencil", default="cubature", choices=("gauss", "antithetic", "cubature"))
    p.add_argument("--h", type=float, default=None, help="finite-difference step, in the points' units")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--field-coordinates",
        action="store_true",
        help="points and results are in the field's normalised coordinates, not the mesh's original ones",
    )
    p.add_argument("--out", required=True, help=".npy file to write")
    p.set_defaults(func=run)


def load_points(path: str, dim: int):
    import numpy as np

    from ..errors import InputError

    try:
        points = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"points file {path!r} does not exist") from None
    except (ValueError, OSError) as error:
        raise InputError(f"points file {path!r} is not a readable .npy array: {error}") from None
    if points.dtype not in (np.float32, np.float64):
        raise InputError(f"points file {path!r}: dtype {points.dtype}, expected float32 or float64")
    if points.ndim != 2 or points.shape[1] != dim:
        raise InputError(f"points file {path!r}: shape {points.shape}, expected (N, {dim}) for this {dim}D field")
    if not np.isfinite(points).all():
        raise InputError(f"points file {path!r}: contains NaN or infinite coordinates")
    return points


def run(args) -> int:
    from ..distributed import run_command

    return run_command(args, run_rank)


def run_rank(args, ranks) -> int:
    """The command on each rank of a job (one rank without ``torchrun``): each rank computes a block of the
    points, rank 0 gathers them and writes."""
    import numpy as np

    from ..io.atomic import atomic_path, check_output_path
    from ..io.fieldfile import load_field
    from ..ops.host import DEFAULT_K, OperatorSpec

    with ranks.checkpoint():
        if ranks.rank == 0:
            check_output_path(args.out, "output")
        field = load_field(args.field)
        points = load_points(args.points, field.dim)
    quantity = args.quantity.replace("-", "_")
    scale = 1.0 if args.field_coordinates else field.normalization.scale
    x = points if args.field_coordinates else field.normalization.to_field(points)
    spec = OperatorSpec.for_field(
        field,
        method=args.method,
        k=args.k or DEFAULT_K,
        stencil=args.stencil,
        seed=args.seed,
        sigma=None if args.sigma is None else args.sigma * scale,
        h=None if args.h is None else args.h * scale,
    )
    result = ranks.query(field, x.astype(np.float32), quantity, spec, device=args.device)
    if ranks.rank != 0:
        return 0
    result = np.asarray(result, dtype=np.float64)
    # Field coordinates are (p - center) * scale and an SDF in original units is f / scale:
    # values divide by scale, gradients are unchanged, second derivatives multiply by it.
    unit = {"value": 1.0 / scale, "gradient": 1.0, "normal": 1.0}.get(quantity, scale)
    result = result * unit
    with atomic_path(args.out, "output") as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, result.astype(np.float32))
    print(f"{args.quantity} ({args.method}) at {len(points)} points -> {args.out}")
    return 0
