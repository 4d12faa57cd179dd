"""``warpfields render FIELD --method M [--compare] --out IMG.png``: sphere-traced shading from a method's normals."""

from ..ops.host import METHODS, STENCILS


def register(subparsers) -> None:
    p = subparsers.add_parser("render", help="sphere-trace a field, shaded with the chosen method's normals")
    p.add_argument("field", help="field file or shape word")
    p.add_argument("--method", default="polyfit", choices=list(METHODS))
    p.add_argument("--compare", action="store_true", help="ad, fd and polyfit side by side")
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--sigma", type=float, default=None, help="polyfit scale (field units)")
    p.add_argument("--stencil", default="cubature", choices=list(STENCILS))
    p.add_argument("--h", type=float, default=None, help="fd step (field units)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=480)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--out", required=True, help="PNG to write")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..io.atomic import check_output_path
    from ..io.fieldfile import load_field
    from ..ops.host import OperatorSpec
    from ..render import render, write_compare, write_png

    check_output_path(args.out, "image")
    field = load_field(args.field)

    def spec(method):
        return OperatorSpec.for_field(
            field, method=method, k=args.k, sigma=args.sigma, h=args.h, stencil=args.stencil, seed=args.seed
        )

    if args.compare:
        methods = ("ad", "fd", "polyfit")
        labels = ["autodiff", "finite differences", f"polyfit {args.stencil} k={args.k}"]
        write_compare(
            [field] * 3, [spec(m) for m in methods], labels, args.out, args.width, args.height, device=args.device
        )
    else:
        write_png(render(field, spec(args.method), args.width, args.height, device=args.device)[0], args.out)
    print(f"rendered {args.field} -> {args.out}")
    return 0
