"""Settings shared by every mode, read from the environment (12-factor).

With nothing set, Runway runs on embedded defaults: SQLite and Celery's filesystem broker under var/.
With DATABASE_URL and REDIS_URL set, it runs on PostgreSQL and Redis, the production stack.
"""

import os
from pathlib import Path

import environ
from celery.schedules import crontab
from csp.constants import NONCE

BASE_DIR = Path(__file__).resolve().parents[3]  # the repository root
VAR_DIR = Path(environ.Env().str("RUNWAY_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)
# prometheus_client's multiprocess mode (portal/metrics.py): each process (gunicorn and Celery workers) writes its
# metrics to files here and a scrape sums them. Set before anything imports prometheus_client, which reads it once;
# runstack empties the folder at start so that a previous run's counts do not carry over.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(VAR_DIR / "prometheus"))
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

env = environ.Env()

SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-change-me")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "django_htmx",
    "template_partials",
    "django_celery_beat",
    "django_structlog",
    # Runway's own apps, imported by name because platform/ is the source root.
    "portal",
    "audit",
    "accounts",
    "teams",
    "catalog",
    "techdocs",
    "scaffolder",
    "deployments",
    "governance",
    "incidents",
    "insights",
    "monitoring",
    "reviews",
    "scorecards",
    "flags",
]

MIDDLEWARE = [
    # First, so that a request's latency includes every other middleware (portal/metrics.py).
    "portal.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "portal.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # After authentication so that user_id is bound; binds request_id for logs, audit rows and tasks.
    "portal.middleware.RequestLogMiddleware",
    # A service's refusal that a view did not catch becomes a message (400/409), never a 500.
    "portal.middleware.RefusalMiddleware",
]

# Content-Security-Policy on every response (django-csp): scripts, styles, images and connections from the portal
# itself only, and no inline script at all (static/js/runway.js holds the pages' behaviour; a <script> or <style> that
# must be inline carries the request's nonce, `request.csp_nonce`). Inline style *attributes* are allowed
# (style-src-attr): pages draw progress and traffic bars with a computed width, and an attribute can neither run code
# nor select other elements, so the CSS-injection attacks that read a page need a <style> element, which stays refused.
# htmx's own indicator <style> is turned off (base.html's htmx-config) and its rules live in runway.css.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", NONCE],
        "style-src": ["'self'", NONCE],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],  # Swagger UI's icons are data: URLs
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],  # as X-Frame-Options: DENY
    }
}

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
ASGI_APPLICATION = "portal.asgi.application"

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
                "portal.context_processors.navigation",
            ],
        },
    },
]

# https://django-environ.readthedocs.io/en/latest/types.html#environ-env-db-url
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'runway.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server read while a worker writes; the timeout waits out short write locks.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # No JIT compilation: it starts above an estimated cost, and the Insights reports' estimates are high (a
    # set-returning function counts as 100 rows a call), so compiling took 1.4 s of a 1.5 s page. A web request's
    # queries are short: they never win back the compile time.
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["options"] = f"{_options.get('options', '')} -c jit=off".strip()
# The hottest reads (portal/db.py: `prepare=True`) are prepared statements on PostgreSQL. Turn off behind a connection
# pooler in transaction mode (PgBouncer before 1.21), which cannot keep a statement on a server connection.
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
FORMS_URLFIELD_ASSUME_HTTPS = True  # Django 6 behaviour now: a bare host in a URL field means https

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "catalog:service-list"
LOGOUT_REDIRECT_URL = "accounts:login"
GUARDIAN_RAISE_403 = True

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Redis, when configured, is the broker, the result backend and the cache; otherwise everything stays
# on this machine under var/.
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object]
# Every key in the shared cache starts with this installation's identity (portal/cache.py), so that installations
# sharing one Redis database (staging and production, two benches) never serve each other's entries. Empty: the
# database's name and a random id stored in it by migrate, read on the first cache use (never while settings load).
RUNWAY_INSTALLATION_ID = env.str("RUNWAY_INSTALLATION_ID", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "portal.cache.RedisCache",  # Django's, leaner
            "LOCATION": REDIS_URL,
            "KEY_FUNCTION": "portal.cache.make_key",
        }
    }
    # Sessions read from Redis, written through to the database: no session query on every signed-in page. Only
    # with a shared cache: a per-process cache would keep serving a session that another process ended.
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    # Redis redelivers unacknowledged (acks_late) tasks only after this timeout; keep it above the
    # longest task time limit. https://docs.celeryq.dev/en/stable/getting-started/backends-and-brokers/redis.html
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    if RUNWAY_INSTALLATION_ID:
        # Queues and results scoped too: a worker must never take another installation's tasks (they name rows of
        # that one's database). Only by the setting: a worker started before `migrate` would read no identity from
        # the database and listen on a queue nobody sends to.
        CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = f"{RUNWAY_INSTALLATION_ID}:"
        CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": f"{RUNWAY_INSTALLATION_ID}:"}
else:
    # A per-process cache serves one database only: nothing to scope, and no query for the identity.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "runway"}}
    _queue = VAR_DIR / "celery" / "queue"
    _queue.mkdir(parents=True, exist_ok=True)
    (VAR_DIR / "celery" / "results").mkdir(parents=True, exist_ok=True)
    (VAR_DIR / "celery" / "control").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT = "portal.broker:Transport"  # kombu's, with messages written atomically (see there)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # One folder in and out, so that every process on this host shares the same queue.
        "data_folder_in": str(_queue),
        "data_folder_out": str(_queue),
        "control_folder": str(VAR_DIR / "celery" / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
    CELERY_RESULT_BACKEND = f"file://{VAR_DIR / 'celery' / 'results'}"

# Cache API catalog pages under a shared catalog version; only safe when every process shares the cache.
CATALOG_API_CACHE = env.bool("CATALOG_API_CACHE", default=bool(REDIS_URL))
# The same for the catalog page's results, row counts and filter choices.
CATALOG_PAGE_CACHE = env.bool("CATALOG_PAGE_CACHE", default=bool(REDIS_URL))
# Services matching a filter are counted exactly up to this many; past it, lists give PostgreSQL's estimate and say so
# (catalog/api/pagination.py), so that no page scans the catalog to count it.
CATALOG_EXACT_COUNT_UP_TO = env.int("CATALOG_EXACT_COUNT_UP_TO", default=1000)
# Uploaded catalog archives (catalog/sync.py) stop, and their import fails, past this unpacked size or file count,
# counted as they stream.
CATALOG_ARCHIVE_MAX_UNPACKED_BYTES = env.int("CATALOG_ARCHIVE_MAX_UNPACKED_BYTES", default=250_000_000)
CATALOG_ARCHIVE_MAX_FILES = env.int("CATALOG_ARCHIVE_MAX_FILES", default=100_000)
# Health check probes (monitoring/probe.py, docs/monitoring.md). The deny-list is checked on the address the probe
# connects to, after DNS. Loopback is allowed by default because the local runtime's replicas listen on 127.0.0.1;
# production settings refuse it unless MONITORING_PROBE_ALLOW_LOOPBACK is set.
MONITORING_PROBE_DENY_NETWORKS = env.list(
    "MONITORING_PROBE_DENY_NETWORKS",
    default=["169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32", "0.0.0.0/8"],
)
MONITORING_PROBE_ALLOW_LOOPBACK = env.bool("MONITORING_PROBE_ALLOW_LOOPBACK", default=True)
# Paths refused on the portal's own hosts (ALLOWED_HOSTS unless MONITORING_PROBE_PORTAL_HOSTS names them).
MONITORING_PROBE_DENY_PATHS = env.list("MONITORING_PROBE_DENY_PATHS", default=["/admin/"])
MONITORING_PROBE_PORTAL_HOSTS = env.list("MONITORING_PROBE_PORTAL_HOSTS", default=None)
MONITORING_PROBE_MAX_BODY_BYTES = env.int("MONITORING_PROBE_MAX_BODY_BYTES", default=65_536)
MONITORING_RAW_RETENTION_DAYS = env.int("MONITORING_RAW_RETENTION_DAYS", default=7)
# A first successful deployment to an environment nobody watches adds a health check of its deployed replicas, where
# the runtime says where they run (the local runtime does).
MONITORING_WATCH_DEPLOYMENTS = env.bool("MONITORING_WATCH_DEPLOYMENTS", default=True)
# How often each health check's /metrics page (its metrics_path on the check's host) is scraped into stored series.
MONITORING_SCRAPE_INTERVAL_SECONDS = env.int("MONITORING_SCRAPE_INTERVAL_SECONDS", default=60)
# An SLO's page alert opens an incident ("page") or does not ("off"); an SLO's runway.dev/incidents annotation
# overrides this (docs/monitoring.md).
MONITORING_SLO_INCIDENTS = env.str("MONITORING_SLO_INCIDENTS", default="page")
# The largest and most deeply nested Markdown (runbooks, ADRs) that is rendered; larger is refused on save and import
# and shown as plain text (techdocs/markdown.py says why the renderer needs the bound).
MARKDOWN_MAX_BYTES = env.int("MARKDOWN_MAX_BYTES", default=262_144)
MARKDOWN_MAX_NESTING = env.int("MARKDOWN_MAX_NESTING", default=32)
# Hosts whose descriptor files a catalog's Location entities may name by (https) URL; none by default.
CATALOG_LOCATION_ALLOWED_HOSTS = env.list("CATALOG_LOCATION_ALLOWED_HOSTS", default=[])
# API tokens and their users cached for a minute (accounts/tokens.py); only in a shared cache, or a token revoked in
# one process would still open another's.
API_TOKEN_CACHE = env.bool("API_TOKEN_CACHE", default=bool(REDIS_URL))

CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Synced into django-celery-beat's tables at start; editable in the admin afterwards.
CELERY_BEAT_SCHEDULE = {
    "portal-health-check": {"task": "portal.health_check", "schedule": 300.0},
    # A safety net: imports enqueue the indexer themselves when they commit.
    "portal-search-index": {"task": "portal.search_index", "schedule": 60.0},
    "catalog-fail-stale-imports": {"task": "catalog.fail_stale_imports", "schedule": 300.0},
    # Scaffold runs and golden path updates whose worker died are found by their lapsed lease (scaffolder/leases.py).
    "scaffolder-fail-stale-runs": {"task": "scaffolder.fail_stale_runs", "schedule": 10.0},
    # Deployments wait by `next_run_at`; the sweeper is how long waits end and how dead workers' steps resume.
    "deployments-sweep": {"task": "deployments.sweep", "schedule": 5.0},
    # Health checks wait by `next_run_at`; each run takes the due ones (monitoring/tasks.py).
    "monitoring-run-due-checks": {"task": "monitoring.run_due_checks", "schedule": 5.0},
    "monitoring-rollup-results": {"task": "monitoring.rollup_results", "schedule": 900.0},
    # Each check's /metrics is due every MONITORING_SCRAPE_INTERVAL_SECONDS; each run takes the due ones.
    "monitoring-scrape-metrics": {"task": "monitoring.scrape_metrics", "schedule": 15.0},
    # Changes rescore their service as they happen; the nightly run catches facts that change with time alone.
    "scorecards-rescore-all": {"task": "scorecards.rescore_all", "schedule": crontab(hour=2, minute=30)},
    # Initiatives end after their deadline and remind teams before it (once per team and day, however often it runs).
    "scorecards-initiatives-tick": {"task": "scorecards.initiatives_tick", "schedule": 3600.0},
    # Alertmanager notifications older than the replay window are forgotten (incidents/alertmanager.py).
    "incidents-prune-alert-notifications": {"task": "incidents.prune_alert_notifications", "schedule": 3600.0},
    # Ownership reviews (docs/reviews.md): hourly is enough for periods counted in days; idempotent.
    "reviews-open-periodic": {"task": "reviews.open_periodic_reviews", "schedule": 3600.0},
    "reviews-send-reminders": {"task": "reviews.send_reminders", "schedule": 3600.0},
    # One SLI sample per SLO a minute; the burn-rate windows (5 min and up) sum them (monitoring/burn.py).
    "monitoring-evaluate-slos": {"task": "monitoring.evaluate_slos", "schedule": 60.0},
    # Changes rewrite their rollup rows as they commit; this builds the rollups the first time and rewrites the last
    # two days as a safety net (insights/rollups.py).
    "insights-rollups-sweep": {"task": "insights.rollups_sweep", "schedule": 600.0},
    # The SLIs' error ratios through the anomaly detector, in 10-minute buckets (monitoring/anomaly.py).
    "monitoring-detect-anomalies": {"task": "monitoring.detect_anomalies", "schedule": 600.0},
    # Approval requests past their time cancel their deployment (governance.approvals.requests_expire).
    "governance-expire-approvals": {"task": "governance.expire_approvals", "schedule": 30.0},
    # OFREP evaluation counts gathered in Redis, into their daily rows (flags/counts.py).
    "flags-flush-evaluation-counts": {"task": "flags.flush_evaluation_counts", "schedule": 60.0},
    # Progressive flag rollouts wait by `next_run_at`; a lost step message or a dead worker costs at most this.
    "flags-rollouts-sweep": {"task": "flags.rollouts_sweep", "schedule": 5.0},
    "flags-expire-changes": {"task": "flags.expire_changes", "schedule": 60.0},
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
DJANGO_STRUCTLOG_CELERY_ENABLED = True

REST_FRAMEWORK = {
    # Token first: an anonymous API call then gets 401 with a WWW-Authenticate header.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "portal.api.Pagination",
    # Refuses NUL characters in any query parameter (400) before django-filter reads them.
    "DEFAULT_FILTER_BACKENDS": ["portal.api.FilterBackend"],
    # JSON bodies nested too deeply to parse (RecursionError) or to walk safely are a 400 (portal.api.JSONParser).
    "DEFAULT_PARSER_CLASSES": [
        "portal.api.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.ApiTokenRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "portal.api.ContentNegotiation",
    "EXCEPTION_HANDLER": "portal.api.exception_handler",
}
# Requests per minute allowed to one personal API token.
API_TOKEN_RATE_LIMIT = env.int("API_TOKEN_RATE_LIMIT", default=600)
# How long a web process may answer a busy token from what its last round trip to Redis brought back (its entry and
# rate-limit count; accounts/throttling.py): a revoked token stops working in every process within this. 0: never.
API_TOKEN_HOLD_SECONDS = env.float("API_TOKEN_HOLD_SECONDS", default=1.0)
# OFREP evaluations a minute per feature-flag SDK key (flags/ofrep.py); a server-side SDK evaluates per request.
FLAGS_SDK_RATE_LIMIT = env.int("FLAGS_SDK_RATE_LIMIT", default=60_000)
# Failed sign-ins (accounts/throttling.py): an address is locked out of one account after SIGNIN_FAILURES_PER_ACCOUNT
# failures, out of every account after SIGNIN_FAILURES_PER_ADDRESS, for SIGNIN_LOCKOUT_SECONDS. Behind reverse proxies,
# SIGNIN_TRUSTED_PROXIES says how many, so that the client's address is read from X-Forwarded-For.
SIGNIN_FAILURES_PER_ACCOUNT = env.int("SIGNIN_FAILURES_PER_ACCOUNT", default=5)
SIGNIN_FAILURES_PER_ADDRESS = env.int("SIGNIN_FAILURES_PER_ADDRESS", default=30)
SIGNIN_LOCKOUT_SECONDS = env.int("SIGNIN_LOCKOUT_SECONDS", default=900)
SIGNIN_TRUSTED_PROXIES = env.int("SIGNIN_TRUSTED_PROXIES", default=0)
API_PAGE_SIZE = 50
API_MAX_PAGE_SIZE = 200

SPECTACULAR_SETTINGS = {
    "TITLE": "Runway API",
    "DESCRIPTION": "The service catalog, its teams, ownership and audit trail. Authenticate with a personal "
    "API token (`Authorization: Bearer rwy_...`) or a browser session.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from the sidecar package: the portal works offline, with no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Every operation's error responses (400/401/403/404/409/415/429), which drf-spectacular leaves out.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "portal.api.schema_error_responses"],
    "ENUM_NAME_OVERRIDES": {
        "AdrStatusEnum": "techdocs.models.ADR.Status",
        "RunStatusEnum": "scaffolder.models.ScaffoldRun.Status",
        "GoldenPathUpdateStatusEnum": "scaffolder.models.GoldenPathUpdate.Status",
        "DeploymentStateEnum": "deployments.models.State",
        "DecommissionStateEnum": "deployments.models.DecommissionState",
        "HealthStatusEnum": "monitoring.models.HealthStatus",
        "PolicyActionEnum": "governance.models.Action",
        "PolicyVerdictEnum": "governance.models.Verdict",
        "IncidentStatusEnum": "incidents.models.Status",
        "AlertStatusEnum": ["firing", "resolved"],
        "PostmortemStateEnum": "incidents.models.Postmortem.State",
        "ActionItemStatusEnum": "incidents.models.ActionItem.Status",
        "FlagKindEnum": "flags.models.FlagKind",
        "FlagTypeEnum": "flags.models.FlagType",
    },
}

LOG_FORMAT = env.str("LOG_FORMAT", default="console")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
from portal.logs import logging_configure  # noqa: E402  (needs LOG_FORMAT above)

LOGGING = logging_configure(log_format=LOG_FORMAT, level=LOG_LEVEL)

# Where the catalog's demo organisation and golden paths live.
SERVICES_DIR = BASE_DIR / "services"
GOLDEN_PATHS_DIR = BASE_DIR / "golden_paths"
# Every version of every golden path that Runway rendered, as tagged commits: what "update from golden path" merges.
GOLDEN_PATH_STORE = Path(env.str("GOLDEN_PATH_STORE", default=str(VAR_DIR / "golden-paths")))
# Where new repositories are published: "local" keeps bare git repositories under GIT_ROOT, browsable from the portal;
# "github" and "gitlab" create them on a forge and push over HTTPS (scaffolder/publishers.py).
SCAFFOLD_PUBLISHER = env.str("SCAFFOLD_PUBLISHER", default="local")
GIT_ROOT = Path(env.str("GIT_ROOT", default=str(VAR_DIR / "git")))
# private, internal or public; forges only (a local repository is as visible as the portal).
SCAFFOLD_REPOSITORY_VISIBILITY = env.str("SCAFFOLD_REPOSITORY_VISIBILITY", default="private")
# https://docs.github.com/en/rest/repos/repos#create-an-organization-repository: the token needs to create, delete
# (delete_repo) and administer repositories in GITHUB_ORG. GitHub Enterprise: https://HOST/api/v3.
GITHUB_TOKEN = env.str("GITHUB_TOKEN", default="")
GITHUB_ORG = env.str("GITHUB_ORG", default="")
GITHUB_API_URL = env.str("GITHUB_API_URL", default="https://api.github.com")
# https://docs.gitlab.com/api/projects/: the token needs the `api` scope and Maintainer (Owner, to delete) in the
# group GITLAB_NAMESPACE (a group path such as platform/services).
GITLAB_URL = env.str("GITLAB_URL", default="https://gitlab.com")
GITLAB_TOKEN = env.str("GITLAB_TOKEN", default="")
GITLAB_NAMESPACE = env.str("GITLAB_NAMESPACE", default="")
# A worker running a scaffold or a golden path update renews a lease on it every third of this; a run whose lease
# lapsed (its worker died) is retried or failed by the sweeper within this plus its 10 s period (short in tests).
SCAFFOLD_LEASE_SECONDS = env.int("SCAFFOLD_LEASE_SECONDS", default=30)
# The portal's own address, for links made outside a request (a worker registering a new repository).
PORTAL_URL = env.str("PORTAL_URL", default="http://127.0.0.1:8000").rstrip("/")

# Deployments. The local runtime checks releases out under DEPLOY_ROOT and runs replicas under a supervisord of its
# own (started on first use, so it outlives worker restarts), reached through XML-RPC on a Unix socket.
DEPLOY_ROOT = Path(env.str("DEPLOY_ROOT", default=str(VAR_DIR / "deploy")))
# A worker holding a step longer than this is presumed dead and the sweeper resumes the step (short in fault tests).
DEPLOY_STEP_LEASE_SECONDS = env.int("DEPLOY_STEP_LEASE_SECONDS", default=120)
DEPLOY_MAX_STEP_ATTEMPTS = 3
DEPLOY_MAX_ROLLBACK_ATTEMPTS = 3
DEPLOY_DEADLINE_SECONDS = env.int("DEPLOY_DEADLINE_SECONDS", default=3600)
# Prometheus' HTTP API; when set, analysis reads error rates and latencies from it instead of replica endpoints.
PROMETHEUS_URL = env.str("PROMETHEUS_URL", default="")

# Governance: deploy policies written in CEL and judged against a fact document (docs/governance.md).
# The organisation's time zone gives the fact document's weekday and hour ("no deploys on Friday after 14:00").
GOVERNANCE = {
    "ORG_TIME_ZONE": env.str("RUNWAY_ORG_TIME_ZONE", default="UTC"),
    # No policy can hang a worker: CEL has no loops, so an expression's cost is bounded by its size and by how deeply
    # its comprehensions (all, exists, map, filter...) nest over the document's lists.
    "MAX_EXPRESSION_CHARS": 2000,
    "MAX_COMPREHENSIONS": 3,
    "MAX_COMPREHENSION_DEPTH": 2,
    # The organisation's starter policies (policy files with their tests), synced by demo_load.
    "POLICIES_DIR": BASE_DIR / "policies",
    # A deployment waiting for approvals is cancelled when its request is this old (governance.approvals).
    "APPROVAL_EXPIRY_HOURS": env.float("RUNWAY_APPROVAL_EXPIRY_HOURS", default=24.0),
}

# Ownership reviews (docs/reviews.md). A service's ownership must be verified every VERIFICATION_DAYS (per tier where
# REVIEW_TIER_VERIFICATION_DAYS names one, e.g. "1=90,2=120"); beat then opens a review item for it in its team's
# rolling campaign, due DUE_DAYS later. Reminders go REMIND_DAYS_BEFORE the due date and on every overdue day, and
# to platform admins once an item is ESCALATE_AFTER_DAYS overdue.
REVIEWS = {
    "VERIFICATION_DAYS": env.int("REVIEW_VERIFICATION_DAYS", default=180),
    "TIER_VERIFICATION_DAYS": {
        int(tier): int(days) for tier, days in env.dict("REVIEW_TIER_VERIFICATION_DAYS", default={}).items()
    },
    "DUE_DAYS": env.int("REVIEW_DUE_DAYS", default=14),
    "REMIND_DAYS_BEFORE": env.int("REVIEW_REMIND_DAYS_BEFORE", default=3),
    "ESCALATE_AFTER_DAYS": env.int("REVIEW_ESCALATE_AFTER_DAYS", default=7),
}
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="runway@localhost")
SCORECARDS = {
    # A change to a service's facts rescores it this many seconds later: a burst of edits makes one rescoring.
    "RESCORE_DELAY_SECONDS": env.int("SCORECARDS_RESCORE_DELAY_SECONDS", default=2),
    # The organisation's starter scorecards (scorecard files with their tests), synced by demo_load.
    "DIR": BASE_DIR / "scorecards",
    # Initiatives remind the teams whose services are not there yet on each of the last days before the deadline.
    "REMIND_DAYS_BEFORE": env.int("SCORECARDS_REMIND_DAYS_BEFORE", default=7),
}

# Insights reads daily rollups on PostgreSQL once built (docs/insights.md, "Daily rollups"); False computes every page
# straight from the deployments.
INSIGHTS_ROLLUPS = env.bool("INSIGHTS_ROLLUPS", default=True)

# Incidents (docs/insights.md): suspects are production deployments this long before an incident's start; these
# severities get a postmortem.
INCIDENTS = {
    "SUSPECT_WINDOW_MINUTES": env.int("INCIDENTS_SUSPECT_WINDOW_MINUTES", default=60),
    "POSTMORTEM_SEVERITIES": env.list("INCIDENTS_POSTMORTEM_SEVERITIES", default=["SEV1", "SEV2"]),
    # Alertmanager notifications: bodies larger than this are refused (413); a body received again within
    # REPLAY_DAYS is a replay (409).
    "ALERTMANAGER_MAX_BYTES": env.int("INCIDENTS_ALERTMANAGER_MAX_BYTES", default=1024 * 1024),
    "REPLAY_DAYS": env.int("INCIDENTS_REPLAY_DAYS", default=7),
}

# Runway's own metrics at /metrics (portal/metrics.py, docs/monitoring.md): open to a scraper holding this bearer
# token, or calling from one of these networks (loopback by default: a Prometheus on the same host). No token set:
# networks only.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.1/32", "::1/128"])
# Figures read from rows (deployments, durations) are kept this long in the shared cache: 0 reads them every scrape.
METRICS_ROWS_CACHE_SECONDS = env.int("METRICS_ROWS_CACHE_SECONDS", default=30)
