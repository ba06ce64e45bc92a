"""Every page under Streamlit's AppTest: first visits, deep links, good and bad uploads, labels,
and the points of the explorer's browser review (issue 10) that AppTest can see."""
from __future__ import annotations

import ast
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import models
from explorer.text import unescape
from odd_images import corpus

REPO = Path(__file__).resolve().parent.parent
APP_ARCHS = ["lenet5", "alexnet", "se_resnet18", "vit", "mlp_mixer"]
PATHISH = re.compile(r"(/tmp/|/home/|/root/|/work/|site-packages|card\.json|\.safetensors)")


@pytest.fixture(scope="module")
def app_checkpoints(tiny_data, tmp_path_factory):
    """Random-weight checkpoints of a few architectures, evaluated on the tiny val split, with
    every shipped side file (retrieval, SE profiles, attention figures, robustness) built."""
    import random_zoo
    d = random_zoo.build(tmp_path_factory.mktemp("app-checkpoints"), tiny_data, APP_ARCHS)
    import explorer.zoo
    saved = {k: os.environ.get(k) for k in ("VH_CHECKPOINTS", "VH_DATA")}
    before = explorer.zoo.CHECKPOINTS
    os.environ["VH_CHECKPOINTS"] = str(d)
    os.environ["VH_DATA"] = str(tiny_data)
    explorer.zoo.CHECKPOINTS = d
    yield d
    # later modules (the browser test's server inherits this environment) see the real data again
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    explorer.zoo.CHECKPOINTS = before


@pytest.fixture
def fresh_caches():
    """Pages cache the zoo once per process; a test that swaps the checkpoints starts clean."""
    import streamlit as st
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def run_page(path: str = "app.py", **query):
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=240)
    for k, v in query.items():
        at.query_params[k] = v
    if path != "app.py":
        at.switch_page(path)
    return at.run()


def image_captions(at) -> list[str]:
    return [c for im in at.get("image") for c in im.captions]


def texts(at) -> str:
    """Everything the page says in words."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [i.value for i in at.info] + \
        [e.value for e in at.error] + [w.value for w in at.warning] + [s.value for s in at.subheader] + \
        [h.value for h in at.header] + image_captions(at)
    return unescape("\n".join(str(p) for p in parts))


def assert_clean(at):
    assert not at.exception, [e.message for e in at.exception]
    assert not PATHISH.search(texts(at)), PATHISH.search(texts(at))


def vega_charts(at) -> int:
    return len(at.get("vega_lite_chart")) + len(at.get("arrow_vega_lite_chart"))


HEADLINE = re.compile(r"models say|models disagree")   # Classify's verdict, or its saying there is none


def headlines(at) -> list[str]:
    return [m.value for m in at.markdown if HEADLINE.search(m.value)]


def upload(at, files):
    at.radio(key=[r.key for r in at.radio if r.key and r.key.endswith("-source")][0]).set_value("Your upload").run()
    at.file_uploader[0].set_value(files).run()
    return at


# --- Home ------------------------------------------------------------------------------

def test_home_summary_and_deep_link(app_checkpoints):
    at = run_page("app.py", arch="alexnet")
    assert_clean(at)
    summary = at.markdown[0].value
    assert "14 architectures" in summary and f"{len(APP_ARCHS)} trained checkpoints" in summary
    assert sum(m.value == "not trained yet" for m in at.markdown) == 14 - len(APP_ARCHS)
    assert any("the card you linked to" in c.value for c in at.caption)   # issue 10, point 7
    assert not at.metric  # metrics truncated at 1024 px ("not train..."): plain text now


# --- Classify --------------------------------------------------------------------------

def test_classify_first_visit_shows_every_model(app_checkpoints):
    at = run_page("pages/1_Classify.py")
    assert_clean(at)                                     # issue 10, point 6: results on a first visit
    assert any(f"of {len(APP_ARCHS)}** models say" in h or f"The {len(APP_ARCHS)} models disagree" in h
               for h in headlines(at))
    assert vega_charts(at) == 1                          # the models x classes matrix
    table = at.dataframe[0].value                        # top-5 and latency of every model
    assert len(table) == len(APP_ARCHS) and "latency (ms)" in table.columns and table["latency (ms)"].notna().all()
    spec = json.loads(at.get("vega_lite_chart")[0].proto.spec)
    marks = json.dumps(spec)
    assert '"text"' in marks and "percent" in marks      # point 8: numbers on the cells, not bare bars
    # point 6: no box listing the untrained architectures on top of the page, one line under the picker
    assert not any("Not trained yet" in i.value for i in at.info)
    assert any("appear here once trained" in c.value for c in at.caption)


def test_sidebar_says_home(app_checkpoints):
    """Issue 10, point 8: the first sidebar entry read "app"."""
    at = run_page("pages/2_Compare.py")
    labels = [p.proto.label for p in at.sidebar.get("page_link")]
    assert labels[0] == "Home" and "app" not in labels and len(labels) == 12


def test_classify_good_and_bad_uploads_in_one_session(app_checkpoints):
    at = run_page("pages/1_Classify.py")
    files = corpus()
    upload(at, [(n, raw, "application/octet-stream") for n, (raw, _) in files.items()])
    assert_clean(at)
    bad = [n for n, (_, e) in files.items() if e != "ok"]
    good = [n for n, (_, e) in files.items() if e == "ok"]
    errors = [unescape(e.value) for e in at.error]
    assert len(errors) == len(bad) and all(any(n in e for e in errors) for n in bad)
    assert len(headlines(at)) == len(good)
    # the session keeps working: a clean upload afterwards still classifies
    at.file_uploader[0].set_value([("again.webp", files["photo.webp"][0], "image/webp")]).run()
    assert_clean(at)
    assert not at.error and len(headlines(at)) == 1


def test_classify_headline_on_a_split_vote(app_checkpoints, monkeypatch, fresh_caches):
    """Issue 13, point 5: when no answer leads (two tied at the top here), the headline says the models
    disagree and lists every answer with its models, instead of "2 of 5 models say tench"."""
    import explorer.classify
    from models import data

    def split_vote(loaded, image, k=5, corruption=None, severity=0):
        answers = ["tench", "church", "tench", "church", "golf ball"]
        results = []
        for (arch, (model, card)), cls in zip(loaded.items(), answers):
            probs = [0.02] * 10
            probs[data.NAMES.index(cls)] = 0.82
            results.append(explorer.classify.Result(arch, card.get("title", arch), [(cls, 0.82)], probs, 64, 3))
        return results, {(64, 3): torch.zeros(1, 3, 64, 64)}

    monkeypatch.setattr(explorer.classify, "classify", split_vote)
    at = run_page("pages/1_Classify.py")
    assert_clean(at)
    titles = [models.get_spec(a).title for a in APP_ARCHS]
    assert headlines(at) == ["**The 5 models disagree**: tench and church get 2 votes each, so no answer wins."]
    assert any(m.value == f"Their answers: tench (2): {titles[0]}, {titles[2]}; church (2): {titles[1]}, "
               f"{titles[3]}; golf ball (1): {titles[4]}" for m in at.markdown)
    assert not any("models say" in m.value for m in at.markdown)


@pytest.mark.parametrize("page", ["pages/1_Classify.py", "pages/3_Filters.py", "pages/4_Retrieval.py",
                                  "pages/5_SE_Excitation.py", "pages/6_ViT_Attention.py", "pages/7_Attributions.py"])
def test_rejected_upload_is_said_and_never_replaced_by_a_sample(app_checkpoints, page):
    """Issue 10, point 4: an over-size upload got only a mark on its chip while the page went on
    with the preselected sample as if it were the user's image."""
    at = run_page(page)
    before = len(at.get("image"))
    assert before > 0 or vega_charts(at) > 0            # the first visit shows the sample's results
    big = b"\xff\xd8\xff\xe0" + b"\0" * (21_000_000 - 4)  # 21 MB (decimal, as the uploader lists it), over 20
    upload(at, [("holiday.jpg", big, "image/jpeg")] if page in ("pages/1_Classify.py", "pages/5_SE_Excitation.py")
           else ("holiday.jpg", big, "image/jpeg"))
    assert_clean(at)
    assert any("holiday.jpg is 21.0 MB; the limit is 20 MB" in unescape(e.value) for e in at.error)
    assert not any(re.search(r"_\d\.jpg", c) for c in image_captions(at)), "a sample stood in for the upload"
    assert not headlines(at)
    assert any("Nothing to show until an image is accepted" in i.value for i in at.info)


def data_downloads(at) -> list:
    """The page's own download buttons, without the "Save as SVG" under every chart."""
    return [b for b in at.get("download_button") if not (b.key or "").startswith("_svg_")]


@pytest.fixture
def media_stores(monkeypatch) -> list:
    """Every in-memory media store AppTest makes, kept alive. AppTest drops its mock runtime (and
    the store with it) at the end of each run, and a garbage collection at the wrong moment took
    the exported bytes away before the test could read them (CI, stop 31)."""
    import streamlit.testing.v1.app_test as app_test
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    stores = []

    class Kept(MemoryMediaFileStorage):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            stores.append(self)

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Kept)
    return stores


def download_payloads(at, stores: list) -> list[bytes]:
    """The bytes behind each download button, from the media stores of AppTest's runs (AppTest
    has no public reader for them)."""
    out = []
    for b in data_downloads(at):
        fid = b.proto.url.rsplit("/", 1)[-1].split(".")[0]
        found = [s.get_file(fid).content for s in stores if fid in s._files_by_id]  # noqa: SLF001
        assert found, f"no stored file behind the button {b.label!r}"
        out.append(found[-1])
    return out


def test_classify_downloads_export_what_is_shown(app_checkpoints, media_stores):
    """Issue 10, point 3: the CSV and JSON of the same results disagreed (each click reran the
    models, and each run timed them anew)."""
    at = run_page("pages/1_Classify.py")
    shown = dict(zip(at.dataframe[0].value["model"], at.dataframe[0].value["latency (ms)"]))
    csv_raw, json_raw = download_payloads(at, media_stores)
    data_downloads(at)[0].click().run()                 # a click must not change what is exported
    assert download_payloads(at, media_stores) == [csv_raw, json_raw]
    rows_csv = list(csv.DictReader(io.StringIO(csv_raw.decode())))
    rows_json = json.loads(json_raw)
    assert len(rows_csv) == len(rows_json) == 5 * len(APP_ARCHS)
    assert [{k: str(v) for k, v in r.items()} for r in rows_json] == rows_csv
    titles = {a: models.get_spec(a).title for a in APP_ARCHS}
    assert {titles[r["model"]]: r["latency_ms"] for r in rows_json} == shown


def test_classify_corruption_sweep(app_checkpoints):
    at = run_page("pages/1_Classify.py")
    at.selectbox(key="classify-corruption").set_value("blur").run()
    assert_clean(at)
    assert vega_charts(at) == 2                          # the matrix and the severity sweep
    assert any("blur" in c.lower() for c in image_captions(at))


# --- Compare ---------------------------------------------------------------------------

def test_compare_labels_deep_link_and_one_latency(app_checkpoints):
    at = run_page("pages/2_Compare.py", arch="se_resnet18")
    assert_clean(at)
    table = at.dataframe[0].value
    assert len(table) == len(APP_ARCHS)
    assert not {"params_M", "gmacs", "top1", "latency_ms"} & set(table.columns)      # point 8: raw names
    assert {"params (M)", "GMACs", "latency (ms)", "top-1 (%)", "top-5 (%)", "input (px)"} <= set(table.columns)
    assert at.selectbox(key="cmp-a").value == "se_resnet18"                           # point 7: ?arch=
    assert any("median of 9 warm runs" in c.value for c in at.caption)
    # point 3: the latency on Compare is the latency on Classify (one measurement per process)
    classify = run_page("pages/1_Classify.py")
    there = dict(zip(classify.dataframe[0].value["model"], classify.dataframe[0].value["latency (ms)"]))
    here = dict(zip(table["model"], table["latency (ms)"]))
    assert here == there
    assert any("val images get different top-1 answers" in m.value for m in at.markdown)
    at.selectbox(key="cmp-metric").set_value("train_loss").run()
    assert_clean(at)


def test_compare_says_a_bad_link_once(app_checkpoints):
    """The page reads ?arch= for its charts and again for its Model A picker: the sentence that
    the link shows nothing is said once, at the top."""
    at = run_page("pages/2_Compare.py", arch="nosuchnet")
    assert_clean(at)
    said = [c.value for c in at.caption if "no architecture of that name" in c.value]
    assert len(said) == 1 and "“nosuchnet”" in said[0]


def test_compare_robustness_section(app_checkpoints):
    at = run_page("pages/2_Compare.py")
    assert any("relative robustness is the mean top-1" in c.value for c in at.caption)
    at.selectbox(key="cmp-corruption").set_value("Blur").run()
    assert_clean(at)


def test_compare_names_each_teacher_beside_the_training_table(app_checkpoints, fresh_caches):
    """Two of the zoo learned from a teacher: the caption names them with their teachers, the pupils
    of one teacher together, and the table keeps to columns that fit beside the sidebar at 1024 px
    (a teacher column cut "ConvNet + BatchNorm" off there)."""
    import streamlit as st
    paths = {a: app_checkpoints / a / "card.json" for a in ("vit", "mlp_mixer")}
    saved = {a: p.read_text() for a, p in paths.items()}
    se = {"arch": "se_resnet18", "title": "SE-ResNet-18", "val_top1": 80.0}
    bn = {"arch": "bn_convnet", "title": "ConvNet + BatchNorm", "val_top1": 86.0}
    try:
        for teachers, expected in (({"vit": se, "mlp_mixer": bn}, "Vision Transformer (from SE-ResNet-18), "
                                    "MLP-Mixer (from ConvNet + BatchNorm) learned from"),
                                   ({"vit": bn, "mlp_mixer": bn}, "Vision Transformer and MLP-Mixer (from "
                                    "ConvNet + BatchNorm) learned from")):
            for a, teacher in teachers.items():
                paths[a].write_text(json.dumps({**json.loads(saved[a]), "teacher": teacher}))
            st.cache_resource.clear()
            at = run_page("pages/2_Compare.py")
            assert_clean(at)
            trained = next(d.value for d in at.dataframe if "PFLOP" in d.value.columns)
            assert len(trained) == len(APP_ARCHS) and "teacher" not in trained.columns
            said = [c.value for c in at.caption if "learned from a teacher's top-1 answers" in c.value]
            assert len(said) == 1 and said[0].startswith(expected), said
    finally:
        for a, p in paths.items():
            p.write_text(saved[a])
        st.cache_resource.clear()


# --- inside the networks ---------------------------------------------------------------

def test_filters_every_model_and_activations(app_checkpoints):
    at = run_page("pages/3_Filters.py", arch="alexnet")
    assert_clean(at)
    assert any("AlexNet: 96 kernels of 11x11x3" in h.value for h in at.subheader)
    at.toggle[0].set_value(True).run()
    assert_clean(at)
    for sort in ("colour", "frequency"):
        at.selectbox(key="filters-sort").set_value(sort).run()
        assert_clean(at)
    assert any("maps (" in c for c in image_captions(at))  # the default sample's activation maps


def test_filters_steps_through_training_snapshots(app_checkpoints):
    """Issue 9, point 4: with first-layer snapshots beside the checkpoint, the page steps through them."""
    from explorer.filters import SNAPSHOTS, save_snapshots
    torch.manual_seed(1)
    snaps = {e: torch.randn(96, 3, 11, 11) for e in (0, 1, 2, 5)}
    path = save_snapshots(snaps, app_checkpoints / "alexnet" / SNAPSHOTS, "alexnet", "trunk.features.conv1")
    try:
        at = run_page("pages/3_Filters.py", arch="alexnet")
        assert_clean(at)
        assert at.select_slider(key="filters-epoch").value == 5
        assert any("after epoch 5" in h.value for h in at.subheader)
        at.select_slider(key="filters-epoch").set_value(0).run()
        assert_clean(at)
        assert any("after epoch 0" in h.value for h in at.subheader) and vega_charts(at) == 1
        assert any("close to random noise" in m.value for m in at.markdown)
    finally:
        path.unlink()


def test_retrieval_labels_and_neighbours(app_checkpoints):
    at = run_page("pages/4_Retrieval.py")
    assert_clean(at)
    table = at.dataframe[0].value
    assert len(table) == len(APP_ARCHS) and {"Euclidean (%)", "raw pixels (%)"} <= set(table.columns)
    k = int(re.search(r"Precision@(\d+)", "\n".join(c.value for c in at.caption)).group(1))
    assert at.slider(key="retr-k").value == k                                  # point 8: default = the k reported
    assert not any("-image-gallery neighbours" in c.value for c in at.caption)
    assert any("Searching the 30 images takes" in c.value and "(median of 5)" in c.value for c in at.caption)
    assert any("Under each image: its class and its Euclidean distance" in m.value for m in at.markdown)
    assert sum(bool(re.search(r"\n[0-9]+\.[0-9]{2}$", c.value)) for c in at.caption) == 2 * k   # labelled
    at.radio(key="retr-metric").set_value("cosine").run()
    assert_clean(at)


def test_se_page_first_visit_and_class_profiles(app_checkpoints):
    at = run_page("pages/5_SE_Excitation.py")
    assert_clean(at)
    assert any("no SE blocks: LeNet-5, AlexNet, Vision Transformer, MLP-Mixer" in c.value for c in at.caption)
    assert at.selectbox(key="se-model").value == "se_resnet18"
    assert any("minus" in m.value for m in at.markdown)          # point 6: two samples and their difference
    assert at.select_slider(key="se-block").value == 8            # point 8: the last block, not block 7
    assert any("8 blocks" in c.value for c in at.caption)


def test_attention_page_with_vit_and_mixer(app_checkpoints):
    at = run_page("pages/6_ViT_Attention.py")
    assert_clean(at)
    caps = image_captions(at)
    assert "attention rollout" in caps and any(c.startswith("gradient rollout for") for c in caps)
    assert sum(c.startswith("head ") for c in caps) == 3
    assert any("Mean attention distance" in c.value for c in at.caption)
    assert any("token-mixing weights" in c.value for c in at.caption)
    at.slider(key="att-layer").set_value(1).run()
    assert_clean(at)


def test_attention_page_names_the_pupils_of_one_teacher_once(app_checkpoints, fresh_caches):
    """Both token-mixers learned from ConvNet + BatchNorm, and the page said so twice over, a clause
    each; pupils of different teachers keep a clause each."""
    import streamlit as st
    paths = {a: app_checkpoints / a / "card.json" for a in ("vit", "mlp_mixer")}
    saved = {a: p.read_text() for a, p in paths.items()}
    se = {"arch": "se_resnet18", "title": "SE-ResNet-18", "val_top1": 80.0}
    bn = {"arch": "bn_convnet", "title": "ConvNet + BatchNorm", "val_top1": 86.0}
    try:
        for teachers, expected in (({"vit": bn, "mlp_mixer": bn}, ["Vision Transformer and MLP-Mixer learned from "
                                    "ConvNet + BatchNorm's answers"]),
                                   ({"vit": se, "mlp_mixer": bn}, ["Vision Transformer learned from SE-ResNet-18's "
                                    "answers", "; MLP-Mixer learned from ConvNet + BatchNorm's answers"])):
            for a, teacher in teachers.items():
                paths[a].write_text(json.dumps({**json.loads(saved[a]), "teacher": teacher}))
            st.cache_resource.clear()
            at = run_page("pages/6_ViT_Attention.py")
            assert_clean(at)
            said = [c.value for c in at.caption if "hard distillation, as in DeiT" in c.value]
            assert len(said) == 1 and all(e in said[0] for e in expected), said
    finally:
        for a, p in paths.items():
            p.write_text(saved[a])
        st.cache_resource.clear()


def test_attention_page_linked_to_the_mixer_points_to_its_token_mixing(app_checkpoints):
    """A link to the page for the MLP-Mixer said the page "cannot show" it ("no checkpoint it can
    use") above the Mixer's own section; Home's Mixer card did not link the page at all."""
    at = run_page("pages/6_ViT_Attention.py", arch="mlp_mixer")
    assert_clean(at)
    said = texts(at)
    assert "cannot show" not in said and "no checkpoint" not in said
    assert "The link asks for MLP-Mixer, which has no attention to draw per image" in said
    assert "with the distance measured for the Vision Transformer's heads." in said      # a ViT is shipped too
    assert at.selectbox(key="att-model").value == "vit"          # the ViT's maps as before
    assert any("token-mixing weights" in c.value for c in at.caption)
    from explorer.zoo import pages_for
    assert "Attention" in [p[1] for p in pages_for("mlp_mixer")]
    assert "Attention" not in [p[1] for p in pages_for("resnet18")]


def test_attention_page_without_vit_names_the_command_not_a_path(app_checkpoints, tmp_path, monkeypatch,
                                                                 fresh_caches):
    """Issue 10, point 5: it showed nothing, and `.../checkpoints/vit/card.json does not exist`."""
    for arch in ("lenet5", "alexnet"):
        shutil.copytree(app_checkpoints / arch, tmp_path / arch)
    import explorer.zoo
    monkeypatch.setattr(explorer.zoo, "CHECKPOINTS", tmp_path)
    at = run_page("pages/6_ViT_Attention.py")
    assert_clean(at)
    assert any("python scripts/train.py --arch vit" in i.value for i in at.info)


def test_broken_checkpoint_is_named_without_a_path(app_checkpoints, tmp_path, monkeypatch, fresh_caches):
    shutil.copytree(app_checkpoints / "alexnet", tmp_path / "alexnet")
    shutil.copytree(app_checkpoints / "lenet5", tmp_path / "lenet5")
    (tmp_path / "lenet5" / "card.json").write_text("{not json")
    import explorer.zoo
    monkeypatch.setattr(explorer.zoo, "CHECKPOINTS", tmp_path)
    at = run_page("app.py")
    assert_clean(at)
    at = run_page("pages/1_Classify.py")
    assert_clean(at)


def test_attribution_page_default_and_deep_link(app_checkpoints):
    at = run_page("pages/7_Attributions.py")
    assert_clean(at)
    top1 = {a: json.loads((app_checkpoints / a / "card.json").read_text())["metrics"]["val_top1"]
            for a in APP_ARCHS if a not in ("vit", "mlp_mixer")}
    best_cnn = max(top1, key=lambda a: (top1[a], -APP_ARCHS.index(a)))   # ties: the first in history
    assert at.multiselect(key="attr-models").value == [best_cnn, "vit"]    # the best CNN beside the ViT
    heads = [m.value for m in at.markdown if m.value.startswith("#### ")]
    assert len(heads) == 5 and heads[-1] == "#### Do the methods agree?"      # every method, each explained
    assert len(at.dataframe[0].value) == 6                                     # every pair of the 4 methods
    assert any("agree most (ρ = " in m.value for m in at.markdown)
    at = run_page("pages/7_Attributions.py", arch="alexnet")
    assert at.multiselect(key="attr-models").value == ["alexnet", "lenet5"]    # point 7: two models, not one
    at.toggle(key="attr-shared").set_value(True).run()
    assert_clean(at)


def test_units_page_permalink_and_views(app_checkpoints):
    at = run_page("pages/9_Units.py", arch="alexnet", layer="L2", unit="7")
    assert_clean(at)
    assert at.selectbox(key="units-layer").value == "L2" and at.selectbox(key="units-unit").value == 7
    assert vega_charts(at) == 2                                   # selectivity per layer, class means of the unit
    assert sum(1 for c in image_captions(at) if " · " in c) == 9  # the unit's top 9, each with class and value
    assert any("Mean class selectivity" in m.value for m in at.markdown)
    assert at.query_params["unit"] == ["7"] or at.query_params["unit"] == "7"
    at.selectbox(key="units-layer").set_value("L1").run()
    assert_clean(at)


# --- Anatomy ---------------------------------------------------------------------------

@pytest.mark.parametrize("arch", [s.name for s in models.list_architectures()])
def test_anatomy_every_architecture(app_checkpoints, arch):
    at = run_page("pages/8_Anatomy.py", arch=arch)
    assert_clean(at)
    assert at.selectbox(key="anat-arch").value == arch
    assert len(at.get("graphviz_chart")) == len(models.get_spec(arch).blocks)
    at.radio(key="anat-preset").set_value("paper").run()
    assert_clean(at)


def test_anatomy_explains_the_blog_resnet34_total(app_checkpoints):
    at = run_page("pages/8_Anatomy.py", arch="resnet34")
    at.radio(key="anat-preset").set_value("paper").run()
    note = " ".join(i.value for i in at.info)
    assert "21,298,314" in note and "21,289,802" in note and "8,512" in note


def test_pages_link_to_anatomy_from_their_model_picker(app_checkpoints):
    at = run_page("pages/3_Filters.py", arch="alexnet")
    links = [p for p in at.get("page_link") if "Anatomy of" in p.proto.label]
    assert links and links[0].proto.label == "Anatomy of AlexNet"


def test_every_page_imports_explorer_before_anything_that_loads_torch():
    """libgomp reads GOMP_SPINCOUNT once, when torch loads it: the page a server runs first
    (any page can be) must import explorer, which sets it, before torch, models or Captum."""
    for page in [REPO / "app.py", *sorted((REPO / "pages").glob("*.py"))]:
        imports = [n for n in ast.parse(page.read_text()).body if isinstance(n, (ast.Import, ast.ImportFrom))
                   and not (isinstance(n, ast.ImportFrom) and n.module == "__future__")]
        first = imports[0]
        assert isinstance(first, ast.Import) and [a.name for a in first.names] == ["explorer"], \
            f"{page.name}: the first import is line {first.lineno}, not `import explorer`"


@pytest.mark.parametrize("given, expected", [(None, "10000"), ("300000", "300000")])
def test_importing_explorer_sets_the_openmp_spin_without_loading_torch_and_keeps_a_set_value(given, expected):
    env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
    if given:
        env["GOMP_SPINCOUNT"] = given
    out = subprocess.run([sys.executable, "-c", "import os, sys, explorer; "
                          "print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)"],
                         cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out == [expected, "False"]
