"""vision-hist home (`streamlit run app.py`): the timeline of vision architectures, one card per
network; `?arch=` scrolls to one. The other pages live in pages/ and share explorer/ui.py."""
from __future__ import annotations

import explorer  # noqa: F401,I001  first: sets OpenMP's spin before torch loads

import streamlit as st

from explorer import provenance, ui

ui.page("vision-hist", layout="centered", blurb="How vision networks evolved, and what each one learned: every classic network "
        "implemented from its paper, trained on Imagenette (10 ImageNet classes), and opened up.")

rows = ui.timeline()
trained = [r for r in rows if r["trained"]]
untrained = [r for r in rows if not r["trained"]]
st.markdown(f"**{len(rows)} architectures**, {rows[0]['year']}–{rows[-1]['year']} · "
            f"**{len(trained)} trained checkpoints**: {', '.join(r['title'] for r in trained) or 'none yet'}")
st.markdown(provenance.zoo_sentence({r["name"]: r["card"] for r in trained}))
if untrained:
    st.caption(f"Not trained yet ({len(untrained)}): {', '.join(r['title'] for r in untrained)}. Their cards show "
               "structure and cost, and their Anatomy pages work; the other pages open once a checkpoint "
               "is trained (each card gives the command).")

links = [(f, label, ic) for section in ui.NAV.values() for f, label, ic in section if f != "app.py"]
for i in range(0, len(links), 3):
    cols = st.columns(3)
    for col, (f, label, ic) in zip(cols, links[i:i + 3]):
        col.page_link(f, label=label, icon=ic)

st.header("Timeline")
linked = ui.deep_link([r["name"] for r in rows])
for r in rows:
    with st.container(border=True):
        st.subheader(f"{r['year']} · {r['title']}", anchor=r["name"])
        if r["name"] == linked:
            st.caption(":material/link: the card you linked to")
        left, right = st.columns([1, 4])
        with left:
            top1 = f"**{r['top1']:.1f}%** Imagenette top-1" if r["top1"] is not None else "not trained yet"
            st.markdown(top1)
            st.caption(f"{r['params'] / 1e6:.2f}M params · {ui.macs_text(r['gmacs'])} at {r['input_size']} px")
        with right:
            p = r["paper"]
            st.markdown(f"[{p.title}]({p.url}) — {p.authors}, *{p.venue}*")
            st.markdown(f"**Key idea.** {r['key_idea']}")
            if r["predecessor"]:
                st.markdown(f"**What changed since {r['predecessor']}.** {r['changed']}")
            else:
                st.markdown(f"**Where it started.** {r['changed']}")
            if r["trained_how"]:
                st.markdown(f"**How it was trained here.** {r['trained_how']}")
            rep = r["reported"]
            figures = " / ".join(f"{v:.1f}% {n}" for v, n in ((rep.top1, "top-1"), (rep.top5, "top-5"))
                                 if v is not None)
            st.caption(f"Paper: {figures + ' on ImageNet, ' if figures else ''}{rep.params} parameters"
                       f"{' — ' + rep.source if figures else ''}. {rep.note}")
            if r["deviations"]:
                with st.expander("How the explorer model differs from the paper"):
                    st.markdown("\n".join(f"- {d}" for d in r["deviations"]))
            cols = st.columns(3)
            for i, (page_file, label, icon, _) in enumerate(r["pages"]):
                cols[i % 3].page_link(page_file, label=label, icon=icon, query_params={"arch": r["name"]})
            if not r["trained"]:
                st.caption(f"Train it with `python scripts/train.py --arch {r['name']}` to open its other pages.")

if linked in {r["name"] for r in rows}:
    # scroll to the linked card once the page has drawn it
    st.html(f"<script>const el = window.parent.document.getElementById({linked!r}) || "
            f"document.getElementById({linked!r}); if (el) el.scrollIntoView({{block: 'start'}});</script>",
            unsafe_allow_javascript=True)
