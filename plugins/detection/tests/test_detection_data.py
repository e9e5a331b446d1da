"""The generated data set and the annotation checks."""
import json

import numpy as np
import pytest

from kdhub.config import ConfigError

from detection_helpers import retinanet, run_cli


def test_generated_set_is_deterministic_valid_coco(tmp_path):
    from kdhub_detection.datasets import check_annotations
    from kdhub_detection.synth import CLASSES, SynthSpec, ensure_embedded, make_image
    spec = SynthSpec(image_size=64, train=6, val=2, test=2, max_objects=4, sizes=(8, 32))
    a = ensure_embedded(spec, tmp_path / "a")
    b = ensure_embedded(spec, tmp_path / "b")
    assert (a / "train" / "000003.png").read_bytes() == (b / "train" / "000003.png").read_bytes()
    coco = json.loads((a / "annotations" / "instances_train.json").read_text())
    assert [c["name"] for c in coco["categories"]] == list(CLASSES)
    assert len(coco["images"]) == 6 and coco["annotations"]
    assert check_annotations(coco, "x") == []
    pixels, objects = make_image(spec, "train", 3)
    assert pixels.shape == (64, 64, 3) and 1 <= len(objects) <= 4
    assert not np.array_equal(make_image(spec, "train", 4)[0], pixels)
    assert ensure_embedded(spec, tmp_path / "a") == a                 # generated once, then reused
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]  # no temp folders left
    with pytest.raises(ValueError, match="sizes"):
        SynthSpec(sizes=(80, 200)).check()


def _coco(anns):
    return {"images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}],
            "categories": [{"id": 1, "name": "circle"}, {"id": 2, "name": "square"}],
            "annotations": [dict(id=i + 1, image_id=1, iscrowd=0, area=1, **a) for i, a in enumerate(anns)]}


def test_check_annotations_names_each_problem():
    from kdhub_detection.datasets import check_annotations
    bad = check_annotations(_coco([
        dict(category_id=1, bbox=[2, 2, 10, 10]),       # fine
        dict(category_id=7, bbox=[2, 2, 10, 10]),       # unknown category
        dict(category_id=1, bbox=[60, 2, 10, 10]),      # past the right border (64)
        dict(category_id=2, bbox=[2, 40, 10, 8.5]),     # within the 1 px tolerance at the bottom (48)
        dict(category_id=2, bbox=[2, 2, 0, 5]),         # empty
    ]), "x")
    assert [aid for aid, _ in bad] == [2, 3, 5]
    assert "unknown category_id 7" in bad[0][1] and "outside its 64x48 image 'a.png'" in bad[1][1]


def _bad_set(tmp_path):
    from PIL import Image
    (tmp_path / "img").mkdir()
    Image.new("RGB", (64, 48)).save(tmp_path / "img" / "a.png")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_coco([dict(category_id=1, bbox=[2, 2, 10, 10]),
                                      dict(category_id=9, bbox=[2, 2, 10, 10])])))
    return path


def test_dataset_refuses_or_skips_bad_annotations(mm, tmp_path):
    from kdhub_detection.datasets import SKIPPED, BadAnnotationError, KDHubCocoDataset
    ann = _bad_set(tmp_path)
    kw = dict(ann_file=str(ann), data_prefix=dict(img=str(tmp_path / "img") + "/"), metainfo=dict(classes=("circle", "square")),
              pipeline=[])
    with pytest.raises(BadAnnotationError, match=r"bad.json: annotation id 2: unknown category_id 9 .*on_bad='skip'"):
        KDHubCocoDataset(**kw)
    ds = KDHubCocoDataset(on_bad="skip", **kw)
    assert len(ds[0]["instances"]) == 1 and [aid for aid, _ in SKIPPED[str(ann)]] == [2]
    with pytest.raises(ConfigError, match="on_bad"):
        KDHubCocoDataset(on_bad="ignore", **kw)


def _train_on(tmp_path, ann, classes, extra=""):
    """``kdhub train`` of a tiny RetinaNet whose training split is the COCO file ``ann`` with ``classes``."""
    cfg = retinanet(tmp_path, "r.py")
    data = (f"dict(_delete_=True, type='KDHubCocoDataset', ann_file='{ann}', data_prefix=dict(img='{tmp_path}/img/'), "
            f"metainfo=dict(classes={tuple(classes)!r}), pipeline=_base_.train_pipeline)")
    cfg.write_text(cfg.read_text() + f"train_dataloader = dict(dataset={data})\n" + extra)
    return run_cli(["train", cfg, "--work-dir", tmp_path / "w"], check=False)


def test_bad_annotation_file_stops_the_cli_with_a_clear_error(tmp_path):
    proc = _train_on(tmp_path, _bad_set(tmp_path), ("circle", "square", "triangle", "ring", "cross"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "annotation id 2: unknown category_id 9" in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / "w").rglob("*.pth"))


def test_teacher_trained_on_other_classes_is_refused(mm, tiny_retina, tmp_path):
    from detection_helpers import distill, load
    student, teacher, ckpt = tiny_retina
    other = tmp_path / "teacher_other.py"
    other.write_text(teacher.read_text() + "train_dataloader = dict(dataset=dict(metainfo=dict(classes=("
                     "'circle', 'square', 'ring', 'triangle', 'cross'))))\n")
    with pytest.raises(ConfigError, match=r"different class sets: the teacher config .* trains on \['circle', "
                                          r"'square', 'ring'"):
        load(distill(tmp_path, "d.py", student, other, ckpt, "dict(type='GID')"))


def _own_set(tmp_path, names=("cat", "dog", "bird"), size=(64, 48), claimed=None):
    """A user's COCO set: one image of ``size`` (the file may claim another), one box per category."""
    from PIL import Image
    (tmp_path / "img").mkdir(exist_ok=True)
    Image.new("RGB", size).save(tmp_path / "img" / "a.png")
    width, height = claimed or size
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": width, "height": height}],
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)],
            "annotations": [dict(id=i + 1, image_id=1, iscrowd=0, area=64, category_id=i + 1, bbox=[2 + 10 * i, 2, 8, 8])
                            for i in range(len(names))]}
    path = tmp_path / "own.json"
    path.write_text(json.dumps(coco))
    return path


def _built(tmp_path, ann, classes, **extra):
    from kdhub_detection.datasets import KDHubCocoDataset
    ds = KDHubCocoDataset(ann_file=str(ann), data_prefix=dict(img=str(tmp_path / "img") + "/"),
                          metainfo=dict(classes=classes), pipeline=[], **extra)
    ds.full_init()
    return ds


def test_classes_must_be_the_files_categories_in_its_order(mm, tmp_path):
    """mmdet numbers labels in the file's category order: another metainfo order names every prediction wrongly
    (with the same AP), a misspelt name drops its class, a forgotten metainfo names 3 classes with COCO's 80."""
    from kdhub_detection.data_checks import dataset_check
    ann = _own_set(tmp_path)
    three = dict(bbox_head=dict(num_classes=3))
    dataset_check(three)("train_dataloader", _built(tmp_path, ann, ("cat", "dog", "bird")))  # as the file has them
    dataset_check(dict(bbox_head=dict(num_classes=2)))("train_dataloader", _built(tmp_path, ann, ("cat", "bird")))
    ds = _built(tmp_path, ann, ("bird", "cat", "dog"))
    assert ds.cat2label == {1: 0, 2: 1, 3: 2}          # mmdet's numbering: cat is label 0, which metainfo calls bird
    with pytest.raises(ConfigError, match=r"metainfo.classes lists \(bird, cat, dog\) but .*own.json lists them as "
                                          r"\(cat, dog, bird\); mmdet numbers labels in the file's order"):
        dataset_check(three)("train_dataloader", ds)
    with pytest.raises(ConfigError, match=r"'birds' are not among the categories of .*own.json \(cat, dog, bird\)"):
        dataset_check(three)("train_dataloader", _built(tmp_path, ann, ("cat", "dog", "birds")))
    from mmdet.datasets import CocoDataset
    coco80 = _built(tmp_path, ann, CocoDataset.METAINFO["classes"])
    with pytest.raises(ConfigError, match=r"metainfo.classes has 80 names, and 'person' and 76 more are not"):
        dataset_check(three)("train_dataloader", coco80)
    with pytest.raises(ConfigError, match=r"model.bbox_head.num_classes is 2, but the data set has 3 classes "
                                          r"\(cat, dog, bird\); set it to 3"):
        dataset_check(dict(bbox_head=dict(num_classes=2)))("train_dataloader", _built(tmp_path, ann, ("cat", "dog", "bird")))
    with pytest.raises(ConfigError, match=r"on_bad='skip' on an evaluated split"):
        dataset_check(three)("test_dataloader", _built(tmp_path, ann, ("cat", "dog", "bird"), on_bad="skip"))


def test_image_sizes_and_evaluator_files_are_checked_against_the_data(tmp_path):
    from kdhub_detection.data_checks import check_evaluators, image_size_problem
    assert image_size_problem(None, {"width": 64, "height": 48}, (64, 48)) is None
    assert image_size_problem(None, {"width": 48, "height": 64}, (64, 48)) is None    # EXIF-rotated
    assert "gives it 640x480 pixels, but the image is 64x48" in image_size_problem(
        None, {"img_path": "a.png", "width": 640, "height": 480}, (64, 48))
    from mmengine.config import Config
    data = dict(type="CocoDataset", data_root=str(tmp_path), ann_file="test.json")
    same = Config(dict(test_dataloader=dict(dataset=data),
                       test_evaluator=dict(type="CocoMetric", ann_file=str(tmp_path / "test.json"))))
    check_evaluators(same, "cfg.py")
    other = Config(dict(test_dataloader=dict(dataset=data),
                        test_evaluator=dict(type="CocoMetric", ann_file=str(tmp_path / "val.json"))))
    with pytest.raises(ConfigError, match=r"cfg.py: test_evaluator.ann_file is .*val.json, but test_dataloader.dataset "
                                          r"reads .*test.json"):
        check_evaluators(other, "cfg.py")
    synth = Config(dict(val_dataloader=dict(dataset=data), val_evaluator=dict(type="SynthCocoMetric", split="val")))
    with pytest.raises(ConfigError, match=r"val_evaluator is SynthCocoMetric, the embedded set's, but "
                                          r"val_dataloader.dataset is CocoDataset"):
        check_evaluators(synth, "cfg.py")


def test_own_data_in_another_class_order_stops_the_cli_before_anything_is_written(tmp_path):
    proc = _train_on(tmp_path, _own_set(tmp_path), ("bird", "cat", "dog"), "model = dict(bbox_head=dict(num_classes=3))\n")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "train_dataloader.dataset: metainfo.classes lists (bird, cat, dog)" in proc.stderr
    assert not (tmp_path / "w").exists()
