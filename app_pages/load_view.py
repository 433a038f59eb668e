"""The state-dict workshop's load report on the page: the outcome with its message, the hints, and the missing,
unexpected and shape-mismatched keys side by side. A widget group, not a page (app.py does not list it); the report
comes from tl_core.state.load_into."""
import streamlit as st

from tl_core import state
from tl_core.i18n import tr


def show(report: state.LoadReport) -> None:
    """The outcome (loaded, partial or refused) with its message, one line per hint, one column per list of keys."""
    {"loaded": st.success, "partial": st.warning, "refused": st.error}[report.outcome](report.message())
    for hint in report.hints:
        st.info(tr("Hint: {hint}.", hint=hint))
    for col, (title, what, rows) in zip(st.columns(3), report.lists()):
        col.metric(f"{tr(title)} ({tr(what)})", len(rows))   # tl_core.state's words (Spanish once marked N_)
        if rows:
            col.dataframe(rows, key=f"sd_report_{title.lower()}", hide_index=True, height=min(260, 38 + 35 * len(rows)))
        else:
            col.caption(tr("none"))
