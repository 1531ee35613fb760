"""Pretrain the built-in ViT on MNIST into the asset cache (or ``--out``), and print its config.

    python scripts/pretrain_builtin_vit.py            # into $GENFT_HOME/models/vit_mnist (forced)
    python scripts/pretrain_builtin_vit.py --out DIR --steps 500 --seed 0   (--steps only with --out)
"""

from __future__ import annotations

import argparse
import json

from trainables.assets import ensure_builtin_vit
from trainables.data.builtin import vit


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="output folder (default: the asset cache, rebuilt)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.out:
        config = vit.pretrain(args.out, steps=args.steps, seed=args.seed)
    else:
        folder = ensure_builtin_vit(force=True)
        config = json.loads((folder / vit.CONFIG_FILE).read_text())
    print(json.dumps(config, indent=2))


if __name__ == "__main__":
    main()
