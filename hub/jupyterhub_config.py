"""JupyterHub for a course that runs the workbook: `jupyterhub -f hub/jupyterhub_config.py`.

One machine, one course (`dspy-ch07`), nbgrader's file-system exchange. Every single-user server
runs the workbook's virtualenv; instructors get nbgrader's Formgrader on `~/dspy-ch07`, students
get the Assignments tab (fetch, submit, fetch feedback). hub/README.md is the instructor's guide.

Settings come from the environment, so this file stays as it is in the repository:

    WORKBOOK_HUB_DIR       the hub's folder (default /srv/dspy-ch07): instructors.txt and
                           students.txt (one user name a line), the hub's database and cookie
                           secret, and the nbgrader exchange (exchange/)
    WORKBOOK_HUB_EXCHANGE  the exchange elsewhere (default $WORKBOOK_HUB_DIR/exchange)
    WORKBOOK_HUB_VENV      the virtualenv the servers run (default: this repository's .venv)
    WORKBOOK_HUB_MODE      `production` (default): PAM log-in with each user's Unix password, and
                           each user's server runs as their own Unix account (LocalProcessSpawner).
                           `trial`: shared passwords and every server runs as the hub's own Unix
                           user, with a home in $WORKBOOK_HUB_DIR/home/ (SimpleLocalProcessSpawner)
                           — for a dry run on one laptop and the tests, never for a real class:
                           users are not isolated from each other.
    WORKBOOK_HUB_STUDENT_PASSWORD, WORKBOOK_HUB_INSTRUCTOR_PASSWORD
                           the two shared passwords of trial mode (8 and 32 characters at least)
    WORKBOOK_HUB_SHARED_MODEL  `1`: run the course model ONCE, as a hub-managed service (an
                           OpenAI-compatible server on 127.0.0.1), and point every kernel at it
                           instead of each kernel loading its own copy (~450 MB each). Off by
                           default. WORKBOOK_HUB_MODEL_PORT (default 8765) and
                           WORKBOOK_HUB_MODEL_THREADS (default 2) tune it; its API key is made
                           once in $WORKBOOK_HUB_DIR/model_api_key (mode 600).

Where the hub listens is a command-line setting (`--JupyterHub.bind_url=...`, default
http://127.0.0.1:8000): put a TLS-terminating web server in front, or see README for HTTPS.
"""

import os
import secrets
import shutil
from pathlib import Path

c = get_config()  # noqa: F821 (provided by JupyterHub)

COURSE_ID = "dspy-ch07"
# nbgrader's group names: with its JupyterHubAuthPlugin, course membership comes from these.
INSTRUCTOR_GROUP = f"formgrade-{COURSE_ID}"
STUDENT_GROUP = f"nbgrader-{COURSE_ID}"

HUB = Path(__file__).resolve().parent
STATE = Path(os.environ.get("WORKBOOK_HUB_DIR", f"/srv/{COURSE_ID}")).resolve()
EXCHANGE = Path(os.environ.get("WORKBOOK_HUB_EXCHANGE", STATE / "exchange")).resolve()
VENV = Path(os.environ.get("WORKBOOK_HUB_VENV", HUB.parent / ".venv")).absolute()
MODE = os.environ.get("WORKBOOK_HUB_MODE", "production")
if MODE not in ("production", "trial"):
    raise SystemExit(f"WORKBOOK_HUB_MODE is {MODE!r}: use 'production' or 'trial'")


def roster(name: str) -> list[str]:
    """The user names in `STATE/name`: one a line, `#` starts a comment."""
    path = STATE / name
    if not path.is_file():
        raise SystemExit(f"{path} is missing: list the course's users there, one name a line")
    names = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [n for n in names if n]


INSTRUCTORS = roster("instructors.txt")
STUDENTS = roster("students.txt")

# ---- the hub's own state --------------------------------------------------------------------
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")
c.JupyterHub.bind_url = "http://127.0.0.1:8000"
# The proxy pinned in hub/package-lock.json (`make hub-proxy`), else one on PATH.
_proxy = HUB / "node_modules" / ".bin" / "configurable-http-proxy"
if _proxy.exists():
    c.ConfigurableHTTPProxy.command = [str(_proxy)]
elif not shutil.which("configurable-http-proxy"):
    raise SystemExit(f"{_proxy} is missing: run `make hub-proxy` (npm ci in hub/)")

# ---- who may log in -------------------------------------------------------------------------
c.Authenticator.allowed_users = set(INSTRUCTORS) | set(STUDENTS)
# Instructors are hub admins: they can add users in the admin panel and open a student's server
# to help (Control Panel → Admin).
c.Authenticator.admin_users = set(INSTRUCTORS)
# Groups are only added to at start-up (a name removed from a roster stays in its group until
# removed in the admin panel). Membership in the instructors' group is what gives a user the
# instructor's server (below): a teaching assistant is added there.
c.JupyterHub.load_groups = {
    INSTRUCTOR_GROUP: {"users": INSTRUCTORS},
    STUDENT_GROUP: {"users": STUDENTS},
}

if MODE == "trial":
    c.JupyterHub.authenticator_class = "shared-password"
    c.SharedPasswordAuthenticator.user_password = os.environ.get("WORKBOOK_HUB_STUDENT_PASSWORD")
    c.SharedPasswordAuthenticator.admin_password = os.environ.get(
        "WORKBOOK_HUB_INSTRUCTOR_PASSWORD"
    )
    c.JupyterHub.spawner_class = "simple"
    c.SimpleLocalProcessSpawner.home_dir_template = str(STATE / "home" / "{username}")
    if os.geteuid() == 0:
        c.Spawner.args = ["--allow-root"]  # the servers run as the hub's user: root here
else:
    # Each user is a Unix account with a password (useradd + chpasswd, or the site's LDAP
    # through PAM); their server runs as that account, in its home, with its file rights.
    c.JupyterHub.authenticator_class = "pam"
    c.JupyterHub.spawner_class = "localprocess"

# ---- the single-user servers ----------------------------------------------------------------
c.Spawner.cmd = [str(VENV / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
# A server's first start imports JupyterLab and every extension: slow on a small, busy machine.
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
# The venv's bin/ first: kernels (the `python3` kernelspec runs `python`), nbgrader's `alembic`
# and terminals all get the workbook's environment without activating anything.
c.Spawner.environment = {
    "PATH": os.pathsep.join([str(VENV / "bin"), "/usr/local/bin", "/usr/bin", "/bin"]),
    "WORKBOOK_HUB_EXCHANGE": str(EXCHANGE),
    "WORKBOOK_HUB_MODE": MODE,
}


def configure_by_role(spawner) -> None:
    """Point the server at the instructor's or the student's Jupyter settings (hub/jupyter/):
    nbgrader's course id and exchange for both, Formgrader for instructors only."""
    groups = {group.name for group in spawner.user.groups}
    role = "instructor" if INSTRUCTOR_GROUP in groups else "student"
    spawner.environment = {
        **spawner.environment,
        "JUPYTER_CONFIG_PATH": os.pathsep.join(
            [str(HUB / "jupyter" / role), str(HUB / "jupyter" / "common")]
        ),
    }


c.Spawner.pre_spawn_hook = configure_by_role


# ---- the shared course model (optional) ------------------------------------------------------
# One llama.cpp server for the class, started and stopped by the hub (a managed service), on
# loopback with an API key. Kernels reach it through the hosted path (WORKBOOK_LM=openai/smollm2,
# OPENAI_API_BASE, OPENAI_API_KEY), so no notebook changes. The key keeps out local processes
# that are not the course's servers; every student's kernel holds it, so it is a class key, not a
# per-student one.
if os.environ.get("WORKBOOK_HUB_SHARED_MODEL", "0") == "1":
    MODEL_PORT = int(os.environ.get("WORKBOOK_HUB_MODEL_PORT", "8765"))
    MODEL_THREADS = os.environ.get("WORKBOOK_HUB_MODEL_THREADS", "2")
    key_file = STATE / "model_api_key"
    if not key_file.exists():
        STATE.mkdir(parents=True, exist_ok=True)
        key_file.touch(mode=0o600)
        key_file.write_text(secrets.token_urlsafe(24))
    MODEL_KEY = key_file.read_text().strip()
    c.JupyterHub.services = [
        {
            "name": "course-model",
            # dspy_workbook.lm.class_server becomes llama-cpp-python's OpenAI-compatible server
            "command": [
                str(VENV / "bin" / "python"), "-m", "dspy_workbook.lm.class_server",
                "--port", str(MODEL_PORT), "--threads", MODEL_THREADS,
            ],
            "environment": {"API_KEY": MODEL_KEY},  # not on the command line: `ps` shows that
        },
    ]  # fmt: skip
    c.Spawner.environment = {
        **c.Spawner.environment,
        "WORKBOOK_LM": "openai/smollm2",
        "OPENAI_API_BASE": f"http://127.0.0.1:{MODEL_PORT}/v1",
        "OPENAI_API_KEY": MODEL_KEY,
    }
