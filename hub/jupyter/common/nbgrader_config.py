"""nbgrader settings every server on the course hub shares: the course and its exchange.

The hub puts this folder on JUPYTER_CONFIG_PATH (hub/jupyterhub_config.py) and passes the
exchange's path in WORKBOOK_HUB_EXCHANGE.
"""

import os

c = get_config()  # noqa: F821 (provided by nbgrader)

c.CourseDirectory.course_id = "dspy-ch07"
c.Exchange.root = os.environ.get("WORKBOOK_HUB_EXCHANGE", "/srv/dspy-ch07/exchange")
# A student's copy lands in ~/dspy-ch07/ch07/, so one hub can serve several courses.
c.Exchange.path_includes_course = True
