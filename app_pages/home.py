import streamlit as st

from tl_core import device, glossary
from tl_core.i18n import tr
from tl_core.pages import PAGES

st.title("Transfer Lab")
st.markdown(tr(
    """
**Transfer learning** reuses what a model learnt on one task for another.

1. **Pretrain** on a large dataset *D_ext* (millions of photos, or many points of a related task):
   the model learns features and a sense of what functions are plausible.
2. **Fine-tune** on your small dataset *D*: start from those weights, not from random ones, and
   train (all of them, or only the last layers) for a few epochs.

With little data, the pretrained start acts as a **regulariser**: among all the functions that fit
your few examples, it keeps the model near one that made sense on the big task. When the two tasks
are unrelated the same pull misleads: **negative transfer**.
"""))
st.info(tr("Training runs on **{device}** (CUDA first, then Apple MPS, then the CPU).", device=device.describe()))

st.subheader(tr("Pages"))
for p in PAGES[1:]:   # in the sidebar's order
    st.page_link(p.file, label=f"{tr(p.title)}: {tr(p.description)}", icon=f":material/{p.icon}:")
st.caption(tr("Every verdict a page states comes from one rule: the condition against the strongest other one, "
              "paired over seeds, a win or a loss only when the gap is at least a point and its 95% interval "
              "excludes zero; otherwise a tie, said as a tie."),
           help=glossary.help_for("claims rule", "paired", "95% interval"))

st.subheader(tr("A 30-second tour"))
st.markdown(tr(
    """
1. Open the **Regularisation toy**. The left panel shows 30 networks trained from scratch on task B's two
   points; the right panel the same 30 networks pretrained on a related task A first. Look at how far each one
   wanders from B's dashed line between and beyond the points; the verdict above the charts says what the seeds
   show, with its interval.
2. Set *How task A relates to B* to **unrelated** and read the verdict again: the prior can point the wrong way.
3. Open the **Fine-tuning lab** and press **Train**: EfficientNet-Lite0, pretrained on ImageNet, against the same
   network from scratch on 5 digits per class. Then run the **shots sweep** and see at which data size the two meet.
4. Open **Runs**: everything you just trained is there. Pick two runs of one experiment and the page shows exactly
   which settings differ, with their curves on the same axes.
"""))
