"""``warpfields demo``: train, evaluate, fine-tune, simulate and render on Warp's bundled bunny."""


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="the whole pipeline on the bundled bunny, into one folder")
    p.add_argument("--out", default="warpfields-demo", help="output folder (default: ./warpfields-demo)")
    p.add_argument(
        "--preset", default="fast", choices=("tiny", "fast"), help="fast (default): the results; tiny: a smoke test"
    )
    p.add_argument("--mesh", default="bunny", help="mesh to use instead of the bundled bunny")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..demo import run_demo

    run_demo(args.out, preset=args.preset, mesh=args.mesh, seed=args.seed, device=args.device)
    return 0
