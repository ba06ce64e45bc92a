"""Every page under Streamlit's AppTest, with good and bad uploads."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

import models
from odd_images import corpus

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
APP_ARCHS = ["lenet5", "alexnet", "se_resnet18", "vit"]


@pytest.fixture(scope="module")
def app_checkpoints(tiny_data, tmp_path_factory):
    """Random-weight checkpoints of a few architectures, evaluated on the tiny val split."""
    from evaluate import evaluate_checkpoint
    d = tmp_path_factory.mktemp("app-checkpoints")
    for i, arch in enumerate(APP_ARCHS):
        torch.manual_seed(i)
        m = models.create(arch)
        models.save(m, d / arch, {"num_classes": 10, "epochs": 1, "title": models.get_spec(arch).title,
                                  "classes": [{"wnid": w, "name": n} for w, n in models.data.CLASSES]})
        (d / arch / "metrics.csv").write_text("epoch,train_loss,val_top1\n1,2.3,10.0\n2,2.1,20.0\n")
        evaluate_checkpoint(arch, d, tiny_data)
    import build_index
    import se_profiles
    build_index.build(d, tiny_data, per_class=3, k=3)
    se_profiles.build(d, tiny_data)
    os.environ["VH_CHECKPOINTS"] = str(d)
    os.environ["VH_DATA"] = str(tiny_data)
    import explorer.zoo
    explorer.zoo.CHECKPOINTS = d
    return d


def run_page(path: str, **query):
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(REPO / path), default_timeout=180)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def image_captions(at) -> list[str]:
    return [c for im in at.get("image") for c in im.captions]


def assert_clean(at):
    assert not at.exception, [e.message for e in at.exception]


def test_home(app_checkpoints):
    at = run_page("app.py")
    assert_clean(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Architectures"] == "14" and metrics["Trained checkpoints"] == str(len(APP_ARCHS))
    assert any("No trained checkpoint yet for 10 of 14" in w.value and "ResNet-18" in w.value for w in at.warning)
    assert sum(m.value == "not trained yet" for m in at.metric) == 10


def test_classify_good_and_bad_uploads_in_one_session(app_checkpoints):
    at = run_page("pages/1_Classify.py")
    assert_clean(at)
    assert any("Upload an image" in i.value for i in at.info)
    files = corpus()
    at.file_uploader[0].set_value([(n, raw, "application/octet-stream") for n, (raw, _) in files.items()]).run()
    assert_clean(at)
    bad = [n for n, (_, e) in files.items() if e != "ok"]
    good = [n for n, (_, e) in files.items() if e == "ok"]
    errors = [e.value for e in at.error]
    assert len(errors) == len(bad) and all(any(n in e for e in errors) for n in bad)
    agreements = [m for m in at.metric if m.label == "Agreement"]
    assert len(agreements) == len(good) and all(m.value.endswith(f"of {len(APP_ARCHS)} models") for m in agreements)
    assert len(at.get("download_button")) == 2
    # the session keeps working: a clean upload afterwards still classifies
    ok = files["photo.webp"][0]
    at.file_uploader[0].set_value([("again.webp", ok, "image/webp")]).run()
    assert_clean(at)
    assert not at.error and len([m for m in at.metric if m.label == "Agreement"]) == 1


def test_classify_samples_and_deep_link(app_checkpoints):
    at = run_page("pages/1_Classify.py", arch="alexnet")
    assert_clean(at)
    assert at.multiselect[0].value == ["alexnet"]
    at.multiselect[1].set_value(["golf_ball-1.jpg", "church-1.jpg"]).run()
    assert_clean(at)
    assert [m.value for m in at.metric if m.label == "Agreement"] == ["1 of 1 models"] * 2


def test_compare(app_checkpoints):
    at = run_page("pages/2_Compare.py")
    assert_clean(at)
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == len(APP_ARCHS)
    assert any("val images get different top-1 answers" in m.value for m in at.markdown)
    at.selectbox[0].set_value("train_loss").run()
    assert_clean(at)


def test_filters_every_model_and_activations(app_checkpoints):
    at = run_page("pages/3_Filters.py")
    assert_clean(at)
    assert any("AlexNet: 96 kernels of 11x11x3" in h.value for h in at.subheader)
    at.toggle[0].set_value(True).run()
    assert_clean(at)
    for sort in ("colour", "frequency"):
        at.selectbox[1].set_value(sort).run()
        assert_clean(at)
    assert any("maps (" in c for c in image_captions(at))  # the default sample's activation maps


def test_retrieval_shows_both_precisions_and_neighbours(app_checkpoints):
    at = run_page("pages/4_Retrieval.py")
    assert_clean(at)
    table = at.dataframe[0].value
    assert len(table) == len(APP_ARCHS) and {"features, Euclidean (%)", "raw pixels (%)"} <= set(table.columns)
    assert any("search of 30 images" in c.value for c in at.caption)
    at.radio[0].set_value("cosine").run()
    assert_clean(at)


def test_se_page_applies_only_to_se_models(app_checkpoints):
    at = run_page("pages/5_SE_Excitation.py")
    assert_clean(at)
    assert any("no SE blocks: LeNet-5, AlexNet, Vision Transformer" in c.value for c in at.caption)
    assert at.selectbox[0].value == "se_resnet18"
    at.multiselect[0].set_value(["golf_ball-1.jpg", "church-1.jpg"]).run()
    assert_clean(at)
    assert any("8 blocks" in c.value for c in at.caption)
    assert any("Mean gate of each channel" in c.value for c in at.caption)


def test_attention_page_applies_only_to_vit(app_checkpoints):
    at = run_page("pages/6_ViT_Attention.py")
    assert_clean(at)
    assert any("no self-attention: LeNet-5, AlexNet, SE-ResNet-18" in c.value for c in at.caption)
    assert {"input", "attention rollout"} <= set(image_captions(at))
    assert any(c.startswith("gradient rollout for") for c in image_captions(at))
    assert sum(c.startswith("head ") for c in image_captions(at)) == 3
    at.slider[0].set_value(1).run()
    assert_clean(at)


def test_attribution_page_two_models(app_checkpoints):
    at = run_page("pages/7_Attributions.py")
    assert_clean(at)
    assert at.multiselect[0].value == ["lenet5", "alexnet"]
    at.multiselect[1].set_value(["integrated_gradients", "occlusion", "smoothgrad", "gradcam"]).run()
    assert_clean(at)
    assert sum("**" in m.value for m in at.markdown) >= 4
