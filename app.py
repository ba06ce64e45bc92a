"""vision-hist home: the timeline of vision architectures, one card per network."""
from __future__ import annotations

import streamlit as st

from explorer import ui

ui.page("vision-hist", "How vision networks evolved, and what each one learned: every classic network "
        "implemented from its paper, trained on Imagenette (10 ImageNet classes), and opened up.")

rows = ui.timeline()
trained = [r for r in rows if r["trained"]]
untrained = [r["title"] for r in rows if not r["trained"]]
c1, c2, c3 = st.columns(3)
c1.metric("Architectures", len(rows))
c2.metric("Trained checkpoints", len(trained))
c3.metric("Years covered", f"{rows[0]['year']}-{rows[-1]['year']}")
if untrained:
    st.warning(f"No trained checkpoint yet for {len(untrained)} of {len(rows)} architectures: "
               f"{', '.join(untrained)}. Their cards show shapes and costs only; "
               "`python scripts/train.py --arch NAME` trains one.", icon=":material/warning:")

cols = st.columns(4)
cols[0].page_link("pages/1_Classify.py", label="Classify your own image", icon=":material/image:")
cols[1].page_link("pages/2_Compare.py", label="Compare accuracy and cost", icon=":material/monitoring:")
cols[2].page_link("pages/3_Filters.py", label="First-layer filters", icon=":material/grid_view:")
cols[3].page_link("pages/4_Retrieval.py", label="fc7 retrieval", icon=":material/image_search:")
cols = st.columns(4)
cols[0].page_link("pages/5_SE_Excitation.py", label="SE channel weights", icon=":material/tune:")
cols[1].page_link("pages/6_ViT_Attention.py", label="ViT attention", icon=":material/visibility:")
cols[2].page_link("pages/7_Attributions.py", label="Captum attributions", icon=":material/explore:")

st.header("Timeline")
for r in rows:
    with st.container(border=True):
        left, right = st.columns([1, 4])
        with left:
            st.subheader(str(r["year"]))
            st.markdown(f"**{r['title']}**")
            st.metric("Imagenette top-1", f"{r['top1']:.1f}%" if r["top1"] is not None else "not trained yet")
            st.caption(f"{r['params'] / 1e6:.2f}M params · {r['gmacs']:.3f} GMACs at {r['input_size']} px")
        with right:
            p = r["paper"]
            st.markdown(f"[{p.title}]({p.url}) — {p.authors}, *{p.venue}*")
            st.markdown(f"**Key idea.** {r['key_idea']}")
            if r["predecessor"]:
                st.markdown(f"**What changed since {r['predecessor']}.** {r['changed']}")
            else:
                st.markdown(f"**Where it started.** {r['changed']}")
            rep = r["reported"]
            figures = " / ".join(f"{v:.1f}% {n}" for v, n in ((rep.top1, "top-1"), (rep.top5, "top-5"))
                                 if v is not None)
            st.caption(f"Paper: {figures + ' on ImageNet, ' if figures else ''}{rep.params} parameters"
                       f"{' — ' + rep.source if figures else ''}. {rep.note}")
            if r["deviations"]:
                with st.expander("How the explorer model differs from the paper"):
                    st.markdown("\n".join(f"- {d}" for d in r["deviations"]))
            if r["trained"]:
                links = st.columns(len(r["pages"]))
                for col, (page_file, label, icon) in zip(links, r["pages"]):
                    col.page_link(page_file, label=label, icon=icon, query_params={"arch": r["name"]})
            else:
                st.caption("Its pages open once it is trained: `python scripts/train.py --arch "
                           f"{r['name']}`.")
