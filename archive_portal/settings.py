"""Settings of the archive portal, all read from the environment.

With nothing set, the portal runs on its embedded default: a SQLite file and
a generated development secret under ``var/``, django-q2's ORM broker, the
filesystem backend and username/password login.
"""

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PORTAL_VAR_DIR", BASE_DIR / "var"))


def env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", default=False)


def _development_secret_key():
    """A random key kept in var/ so sessions survive restarts on a workstation."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = os.environ.get("SECRET_KEY", "").strip()
if not SECRET_KEY:
    if not DEBUG and not env_bool("PORTAL_DEVELOPMENT"):
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off "
            "(or set PORTAL_DEVELOPMENT=1 for a workstation)."
        )
    SECRET_KEY = _development_secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "archive_portal",
    "catalog",
    "transfers",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "django_q",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.globus",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "archive_portal.middleware.GlobusErrorMiddleware",
]

ROOT_URLCONF = "archive_portal.urls"
WSGI_APPLICATION = "archive_portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "archive_portal.context_processors.portal",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'portal.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # Web and worker processes share the file: wait for locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    if "TEST" not in DATABASES["default"]:
        DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_portal.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "archive_portal.User"

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "catalog:subjects"
LOGOUT_REDIRECT_URL = "account_login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG and not env_bool("PORTAL_DEVELOPMENT")
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = VAR_DIR / "media"

# Security: strict by default whenever DEBUG is off.
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if not DEBUG and not env_bool("PORTAL_DEVELOPMENT"):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_REFERRER_POLICY = "same-origin"

# Globus: the portal's confidential client is both the login client and the
# service identity used by management commands and scheduled discovery.
GLOBUS_CLIENT_ID = os.environ.get("GLOBUS_CLIENT_ID", "")
GLOBUS_CLIENT_SECRET = os.environ.get("GLOBUS_CLIENT_SECRET", "")
GLOBUS_WEB_APP_URL = os.environ.get("GLOBUS_WEB_APP_URL", "https://app.globus.org")
# Tokens are encrypted with these Fernet keys; the first encrypts, all decrypt.
PORTAL_TOKEN_KEYS = env_list("PORTAL_TOKEN_KEYS")
PORTAL_ALLOWED_DOMAINS = env_list("PORTAL_ALLOWED_DOMAINS")
PORTAL_ALLOWED_GLOBUS_GROUP = os.environ.get("PORTAL_ALLOWED_GLOBUS_GROUP", "")
PORTAL_DEVELOPMENT = env_bool("PORTAL_DEVELOPMENT")
# Local accounts are made by admins; self-service signup only when asked for
# and never while Globus login is on (it would bypass the allow-list).
PORTAL_LOCAL_SIGNUP = env_bool("PORTAL_LOCAL_SIGNUP")

# Transfers
# A job larger than this is split into several Globus tasks.
PORTAL_TASK_MAX_FILES = int(os.environ.get("PORTAL_TASK_MAX_FILES", "50000"))
PORTAL_TASK_MAX_BYTES = int(os.environ.get("PORTAL_TASK_MAX_BYTES", str(50 * 1024**4)))
PORTAL_ARCHIVE_DEADLINE_DAYS = int(os.environ.get("PORTAL_ARCHIVE_DEADLINE_DAYS", "7"))
PORTAL_POLL_SECONDS = int(os.environ.get("PORTAL_POLL_SECONDS", "30"))
# A discovery run with no checkpoint for this long may be taken over by another worker.
PORTAL_DISCOVERY_STALE_SECONDS = int(os.environ.get("PORTAL_DISCOVERY_STALE_SECONDS", "300"))

# Allauth: local accounts exist for the embedded default and for admins; lab
# staff log in with Globus.
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_LOGOUT_ON_GET = False
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_AUTO_SIGNUP = True
ACCOUNT_ADAPTER = "archive_portal.globus.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "archive_portal.globus.SocialAccountAdapter"
DEFAULT_EXCEPTION_REPORTER_FILTER = "archive_portal.middleware.TokenSafeExceptionReporterFilter"
SOCIALACCOUNT_PROVIDERS = {
    "globus": {
        "provider_class": "archive_portal.globus.PortalGlobusProvider",
        "APPS": [{"client_id": GLOBUS_CLIENT_ID, "secret": GLOBUS_CLIENT_SECRET}] if GLOBUS_CLIENT_ID else [],
    }
}

# django-q2: retry must exceed timeout so a slow task is not run twice.
Q_CLUSTER = {
    # Portals sharing one Redis server keep apart by name: it names the queue
    # (django-q2 reads Q_CLUSTER_NAME itself, for another purpose).
    "name": os.environ.get("Q_NAME", "archive_portal"),
    "workers": int(os.environ.get("Q_WORKERS", "2")),
    "timeout": int(os.environ.get("Q_TIMEOUT", "600")),
    "retry": int(os.environ.get("Q_RETRY", "720")),
    "max_attempts": 3,
    "queue_limit": 50,
    "bulk": 10,
    "catch_up": False,
    "orm": "default",
    "poll": float(os.environ.get("Q_POLL", "0.5")),
    "ack_failures": True,
    "save_limit": 1000,
    "label": "Background jobs",
}
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    Q_CLUSTER.pop("orm")
    Q_CLUSTER["redis"] = REDIS_URL

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        # Request bodies and headers can hold tokens: keep library debug off.
        "globus_sdk": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}
