"""nbgrader settings of an instructor's server on the course hub: the course folder is
~/dspy-ch07 (inside the server's root, where Formgrader needs it), graded with that folder's own
nbgrader_config.py — the repository's, with the simulated grading model and the sandbox.
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821 (provided by nbgrader)

course = Path.home() / "dspy-ch07"
c.CourseDirectory.root = str(course)
if (course / "nbgrader_config.py").is_file():
    # Formgrader's buttons run in the server, whose working folder is home, not the course.
    load_subconfig(str(course / "nbgrader_config.py"))  # noqa: F821 (provided by traitlets)

# In trial mode every submission's files belong to the hub's Unix user, so the owner check
# would warn on every one; in production it flags a submission made under another's name.
if os.environ.get("WORKBOOK_HUB_MODE") == "trial":
    c.ExchangeCollect.check_owner = False
