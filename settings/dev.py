"""Settings for local development: debug on, a throwaway secret key, `make run`'s Redis."""

from .base import *  # noqa: F403
from .base import BASE_DIR, channel_settings, env

# GENERAL
# ------------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="dev-only-insecure-secret-key")

# CHANNELS AND STREAMING
# ------------------------------------------------------------------------------
# `make run` starts a private Redis on this socket; shells and scripts in other terminals
# find it here, so their saves reach the open page with no setup of their own.
_RUN_REDIS_SOCKET = BASE_DIR / ".run" / "redis.sock"
REDIS_URL = env(
    "REDIS_URL", default=f"unix://{_RUN_REDIS_SOCKET}" if _RUN_REDIS_SOCKET.exists() else ""
)
CHANNEL_LAYERS, STREAMING = channel_settings(REDIS_URL)
