"""``warpfields query FIELD --points P.npy --quantity Q --method M --out OUT.npy``."""

from ..ops.host import METHODS, QUANTITIES, STENCILS


def register(subparsers) -> None:
    p = subparsers.add_parser("query", help="derivatives of a field at your points (.npy in, .npy out)")
    p.add_argument("field", help="field file, or an analytic shape word")
    p.add_argument("--points", required=True, help=".npy file of shape (N, dim), float32 or float64")
    p.add_argument("--quantity", required=True, choices=[q.replace("_", "-") for q in QUANTITIES])
    p.add_argument("--method", default="polyfit", choices=list(METHODS))
    p.add_argument("--k", type=int, default=None, help="polyfit samples (default 32, at most 4096)")
    p.add_argument("--sigma", type=float, default=None, help="polyfit scale, in the points' units")
    p.add_argument("--stencil", default="cubature", choices=list(STENCILS))
    p.add_argument("--h", type=float, default=None, help="finite-difference step, in the points' units")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--field-coordinates",
        action="store_true",
        help="points and results are in the field's normalised coordinates, not the mesh's original ones",
    )
    p.add_argument("--out", required=True, help=".npy file to write")
    p.set_defaults(func=run)


def load_points(path: str, dim: int, bytes_each: int = 0, device=None):
    """The (N, dim) float points of the .npy file ``path``, refused before reading when the query's
    ``bytes_each`` per point cannot fit in memory."""
    import numpy as np

    from ..errors import InputError
    from ..runtime import check_memory

    try:
        points = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"points file {path!r} does not exist") from None
    except (ValueError, OSError, EOFError) as error:
        raise InputError(f"points file {path!r} is not a readable .npy array: {error}") from None
    if not isinstance(points, np.ndarray):
        points.close()
        raise InputError(f"points file {path!r} is an .npz archive (a field file?); expected one .npy array")
    if points.dtype not in (np.float32, np.float64):
        raise InputError(f"points file {path!r}: dtype {points.dtype}, expected float32 or float64")
    if points.ndim != 2 or points.shape[1] != dim:
        raise InputError(f"points file {path!r}: shape {points.shape}, expected (N, {dim}) for this {dim}D field")
    check_memory(f"points file {path!r}: points", points.shape[0], bytes_each, device)
    points = np.array(points)
    if not np.isfinite(points).all():
        raise InputError(f"points file {path!r}: contains NaN or infinite coordinates")
    return points


def _scale_in_points_units(name: str, value, field, scale: float):
    """``value`` (points' units) in field units, checked against the operator's range in the points' units."""
    from ..ops.host import out_of_range, scale_range, scale_rule

    if value is None:
        return None
    low, high = (bound / scale for bound in scale_range(field))
    if not low <= value <= high:
        units = "the points' units" if scale != 1.0 else "field units"
        raise out_of_range(f"--{name}", value, low, high, f"{units}; in " + scale_rule(field))
    return value * scale


def run(args) -> int:
    from ..distributed import run_command

    return run_command(args, run_rank)


def run_rank(args, ranks) -> int:
    """The command on each rank of a job (one rank without ``torchrun``): each rank computes a block of the
    points, rank 0 gathers them and writes."""
    import warnings

    import numpy as np

    from ..errors import InputWarning
    from ..io.atomic import atomic_path, check_output_path
    from ..io.fieldfile import load_field
    from ..ops.host import DEFAULT_K, DOMAIN, OperatorSpec, bytes_per_point, result_size

    with ranks.checkpoint():
        if ranks.rank == 0:
            check_output_path(args.out, "output")
        field = load_field(args.field)
        quantity = args.quantity.replace("-", "_")
        dim = field.dim
        # The file's points, in field units (float64) and float32, and the result in float64 (twice) and float32.
        bytes_each = 8 * dim + 8 * dim + 4 * dim + 20 * result_size(quantity, dim) + bytes_per_point(quantity, dim)
        points = load_points(args.points, dim, bytes_each, args.device)
    scale = 1.0 if args.field_coordinates else field.normalization.scale
    x = points if args.field_coordinates else field.normalization.to_field(points)
    spec = OperatorSpec.for_field(
        field,
        method=args.method,
        k=DEFAULT_K if args.k is None else args.k,
        stencil=args.stencil,
        seed=args.seed,
        sigma=_scale_in_points_units("sigma", args.sigma, field, scale),
        h=_scale_in_points_units("h", args.h, field, scale),
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
    outside = int(np.count_nonzero(np.any((x < DOMAIN[0]) | (x > DOMAIN[1]), axis=1)))
    if outside:
        there = "their values are extended by the distance to it" if quantity == "value" else "the results are NaN"
        warnings.warn(
            f"{outside} of {len(points)} points lie outside the field's domain [{DOMAIN[0]:g}, {DOMAIN[1]:g}]^{dim} "
            f"(field coordinates): {there}",
            InputWarning,
            stacklevel=1,
        )
    return 0
