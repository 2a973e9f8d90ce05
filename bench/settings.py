"""Settings of this project under benchmark: the base settings, quiet, no DEBUG."""

from settings.base import *  # noqa: F403
from settings.base import INSTALLED_APPS, LOGGING, env

SECRET_KEY = env("SECRET_KEY", default="bench-only-secret-key")
DEBUG = False
LOGGING["root"]["level"] = env("LOG_LEVEL", default="WARNING")
# The example app's boards carry large payloads: bench/stall.py stalls sockets with them.
INSTALLED_APPS = [*INSTALLED_APPS, "tests.exampleapp"]

# Analysis only (docs/benchmarks.md): `make bench` never sets BENCH_VARIANT.
_VARIANTS = env("BENCH_VARIANT", default="")
# Several at once, comma-separated: trace,no-relay.
for _variant in filter(None, _VARIANTS.split(",")):
    if _variant == "no-recheck":
        STREAMING["RECHECK_SECONDS"] = 3600.0  # noqa: F405
    elif _variant.startswith("poll-") and _variant.endswith("ms"):
        # poll-5ms, poll-100ms...: the SQLite relay's PRAGMA data_version poll.
        STREAMING["RELAY_POLL_SECONDS"] = float(_variant[5:-2]) / 1000  # noqa: F405
    elif _variant == "conn-max-age":
        DATABASES["default"]["CONN_MAX_AGE"] = None  # noqa: F405
    elif _variant == "no-relay":
        STREAMING["RELAY_POLL_SECONDS"] = 3600.0  # noqa: F405
        STREAMING["RELAY_SAFETY_SECONDS"] = 3600.0  # noqa: F405
    elif _variant == "no-socket-timeout":
        # redis-py 8 defaults socket_timeout to 5 s, which puts each write behind asyncio.wait_for.
        for _host in CHANNEL_LAYERS["default"].get("CONFIG", {}).get("hosts", []):  # noqa: F405
            _host["socket_timeout"] = None
    elif _variant.startswith("grace-"):
        STREAMING["RELAY_GRACE_SECONDS"] = float(_variant.removeprefix("grace-")) / 1000  # noqa: F405
    elif _variant == "gc-log":
        from bench.analysis import log_gc

        log_gc()
    elif _variant == "gc-survivors":
        from bench.analysis import log_gc_survivors

        log_gc_survivors()
    elif _variant == "trace":
        from bench.analysis import trace_stages

        trace_stages()
    elif _variant == "mem-sites":
        from bench.analysis import dump_memory_sites

        dump_memory_sites()
    elif _variant.startswith("gc0-"):
        # Analysis only: another first-generation threshold in the served process, e.g. gc0-100000.
        import gc

        gc.set_threshold(int(_variant.removeprefix("gc0-")), *gc.get_threshold()[1:])
    elif _variant.startswith("gc1-"):
        # Analysis only: another middle-generation threshold in the served process, e.g. gc1-2.
        import gc

        _first, _, _oldest = gc.get_threshold()
        gc.set_threshold(_first, int(_variant.removeprefix("gc1-")), _oldest)
    elif _variant.startswith("gc-") and _variant.count("-") == 3:
        # Analysis only: all three thresholds in the served process, e.g. gc-10000-2-100.
        import gc

        gc.set_threshold(*(int(part) for part in _variant.split("-")[1:]))
    elif _variant == "gc-off":
        # Analysis only: what the collector's pauses cost the tail (memory in cycles is not freed).
        import gc

        gc.disable()
    elif _variant == "gc-default":
        import gc

        gc.set_threshold(700, 10, 10)
