"""Runs at the start of each kernel that executes a chapter when `make book` builds it (the Makefile puts this
file in the kernel's IPython startup folder): each figure a chapter displays is also stored in its output,
pickled and compressed, under the MIME type below, beside its PNG. The Chinese edition draws it again from there with its
labels translated (tools/zh_book.py), so that each chapter's code runs once for both editions. The English
book shows the PNG and ignores this type. Not part of any chapter: a reader running a chapter never meets it."""
import base64
import pickle
import sys
import zlib

from IPython import get_ipython
from IPython.core.formatters import BaseFormatter
from traitlets import ObjectName, Unicode

FIGURE_MIME = "application/vnd.course.figure+pickle"


class FigurePickleFormatter(BaseFormatter):
    """Formats a matplotlib figure only. Not by IPython's registry of types: matplotlib's inline backend takes
    Figure out of every formatter's registry when it starts."""
    format_type = Unicode(FIGURE_MIME)
    print_method = ObjectName("__course_figure_pickle__")  # no object has it

    def __call__(self, obj):
        figure_module = sys.modules.get("matplotlib.figure")
        if figure_module is None or not isinstance(obj, figure_module.Figure):
            return None
        try:
            return base64.b64encode(zlib.compress(pickle.dumps(obj))).decode("ascii")
        except Exception:  # a figure that cannot be pickled keeps its English PNG in both editions  # noqa: BLE001
            return None


shell = get_ipython()
if shell is not None:
    shell.display_formatter.formatters[FIGURE_MIME] = FigurePickleFormatter(parent=shell.display_formatter)
    if FIGURE_MIME not in shell.display_formatter.active_types:
        shell.display_formatter.active_types = [*shell.display_formatter.active_types, FIGURE_MIME]
