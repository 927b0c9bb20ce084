"""Invalidate cached results in L2 (``python -m core.cache invalidate --pipeline NAME | --tenant ID``).

Deletes every entry of the pipeline (all its versions) or of the tenant with ``SCAN`` + ``UNLINK`` on
every primary of the cluster, never ``KEYS``. It uses the same ``REDIS_*`` settings as the function.
Containers keep their L1 copies for at most ``CACHE_L1_TTL_S`` seconds. A new pipeline version needs
no invalidation: its entries have a new key.
"""

from __future__ import annotations

import argparse
import sys

from core.cache.keys import pattern
from core.settings import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m core.cache", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    invalidate = commands.add_parser("invalidate", help="delete cached results by pipeline or tenant")
    target = invalidate.add_mutually_exclusive_group(required=True)
    target.add_argument("--pipeline", help="every version of this pipeline, all tenants")
    target.add_argument("--tenant", help="every entry of this tenant")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    if not settings.redis_url:
        print("REDIS_URL is not set: there is no shared cache to invalidate", file=sys.stderr)
        return 2
    from core.cache.redis_l2 import RedisL2  # noqa: PLC0415 - redis only for this command

    match = pattern(settings.cache_namespace, tenant=args.tenant, pipeline=args.pipeline)
    l2 = RedisL2.from_settings(settings)
    try:
        deleted = l2.delete_matching(match)
    finally:
        l2.close()
    what = f"pipeline {args.pipeline!r}" if args.pipeline else f"tenant {args.tenant!r}"
    print(f"deleted {deleted} cached entries of {what} (pattern {match})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
