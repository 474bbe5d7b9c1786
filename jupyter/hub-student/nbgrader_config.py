"""nbgrader's configuration of a student's server on the class hub (tools/hub.py sets both variables)."""
import os

c = get_config()  # noqa: F821 (provided by traitlets when this file is loaded)

c.CourseDirectory.course_id = os.environ.get("COURSE_ID", "attention-course")
c.Exchange.root = os.environ.get("COURSE_EXCHANGE", "/srv/nbgrader/exchange")
