"""nbgrader settings of a student's server on the course hub.

nbgrader names a submission after the Unix account that makes it. In production every user is
their own Unix account, so that name is the hub's user name and cannot be forged. In trial mode
every server runs as the hub's own Unix user, so the hub's user name is given instead.
"""

import os

c = get_config()  # noqa: F821 (provided by nbgrader)

if os.environ.get("WORKBOOK_HUB_MODE") == "trial" and os.environ.get("JUPYTERHUB_USER"):
    c.CourseDirectory.student_id = os.environ["JUPYTERHUB_USER"]
