"""Settings for the test suite: the portal's own settings on a workstation footing.

Worker and fake-service processes started by the tests inherit the
environment, so they read the same database and the same keys.
"""

import os

os.environ.setdefault("PORTAL_DEVELOPMENT", "1")

from archive_portal.settings import *  # noqa: E402,F403

ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
Q_CLUSTER = {**Q_CLUSTER, "sync": False}  # noqa: F405
