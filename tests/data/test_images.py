"""load_image: real PNG and DICOM fixtures, DICOM display pipeline cases, bad files, and the pixel budget."""

import gzip
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from radrl.data.boxes import Box
from radrl.data.images import (
    ImageError,
    dicom_to_array,
    fit_pixels,
    image_header,
    load_image,
    smart_resize,
)


# --- the real DICOM fixtures ---------------------------------------------------------------------
@pytest.mark.parametrize("name, size", [
    ("CR-MONO1-10-chest.dcm", (440, 440)),   # MONOCHROME1, 10-bit, no file meta header, window 550/1024
    ("RG1_J2KI.dcm", (1841, 1955)),          # MONOCHROME1, 15-bit, JPEG 2000 (pylibjpeg-openjpeg plugin)
    ("siim_1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm", (1024, 1024)),  # JPEG baseline, MONO2
])
def test_real_dicoms_display_bone_white(cxr_data, name, size):
    img = load_image(cxr_data / "dicom" / name)
    assert img.mode == "RGB" and img.size == size
    assert image_header(cxr_data / "dicom" / name)[:2] == size
    a = np.asarray(img)[..., 0].astype(float)
    h, w = a.shape
    # Correct photometric handling: the mediastinum/spine (centre column) is brighter than both
    # lung fields at mid height; an uninverted MONOCHROME1 image would show the opposite.
    mid = a[int(0.35 * h):int(0.5 * h), int(0.47 * w):int(0.53 * w)].mean()
    lungs = [a[int(0.35 * h):int(0.5 * h), int(f * w):int((f + 0.06) * w)].mean() for f in (0.22, 0.72)]
    assert mid > max(lungs) + 30, (mid, lungs)


# --- the DICOM display pipeline, case by case --------------------------------------------------------
def _ramp(dtype, lo, hi, shape=(8, 32)):
    return np.tile(np.linspace(lo, hi, shape[1]).round().astype(dtype), (shape[0], 1))


@pytest.mark.parametrize("arr, tags, expect", [
    # plain 8-bit MONOCHROME2: own min-max, unchanged
    (_ramp(np.uint8, 0, 255), {}, lambda a: a),
    # MONOCHROME1: the lowest stored value is displayed white
    (_ramp(np.uint8, 0, 255), {"photometric": "MONOCHROME1"}, lambda a: 255 - a),
    # 12-bit data without a window: scaled by its own range to 0-255
    (_ramp(np.uint16, 0, 4095), {"bits_stored": 12}, lambda a: np.round(a / 4095 * 255)),
    # rescale slope/intercept then window 40/400 (LINEAR): HU = stored - 1024, HU -160..240 -> 0..255
    (_ramp(np.uint16, 700, 1400), {"RescaleSlope": 1, "RescaleIntercept": -1024, "WindowCenter": 40,
                                   "WindowWidth": 400},
     lambda a: np.round(np.clip((a - 1024.0 - 39.5) / 399 + 0.5, 0, 1) * 255)),
    # slope 2: window applies to the rescaled values (stored 100 -> 200, window 200/200 centres on it)
    (_ramp(np.uint16, 0, 200), {"RescaleSlope": 2, "RescaleIntercept": 0, "WindowCenter": 200, "WindowWidth": 200},
     lambda a: np.round(np.clip((2.0 * a - 199.5) / 199 + 0.5, 0, 1) * 255)),
    # signed 16-bit values, window given as two presets: the first one is used
    (_ramp(np.int16, -1000, 1000), {"WindowCenter": [0, 500], "WindowWidth": [2000, 100]},
     lambda a: np.round(np.clip((a + 0.5) / 1999 + 0.5, 0, 1) * 255)),
])
def test_dicom_pipeline(tmp_path, write_dicom, arr, tags, expect):
    tags = dict(tags)
    photometric = tags.pop("photometric", "MONOCHROME2")
    bits = tags.pop("bits_stored", None)
    out = dicom_to_array(write_dicom(tmp_path / "x.dcm", arr, photometric, bits_stored=bits, **tags))
    np.testing.assert_allclose(out, expect(arr.astype(float)), atol=1)


def test_voi_lut_sequence_is_applied(tmp_path, write_dicom):
    from pydicom.dataset import Dataset

    lut = Dataset()
    lut.LUTDescriptor = [256, 0, 16]
    lut.LUTData = np.linspace(65535, 0, 256).round().astype(np.uint16).tobytes()  # inverting: stored 0 -> 65535
    arr = _ramp(np.uint16, 0, 255)
    out = dicom_to_array(write_dicom(tmp_path / "lut.dcm", arr, bits_stored=8, VOILUTSequence=[lut]))
    np.testing.assert_allclose(out, 255 - arr, atol=1)


def test_voi_lut_output_is_scaled_by_its_bits_not_the_image_range(tmp_path, write_dicom):
    """An identity 12-bit LUT over stored values 1000..2000 shows a mid-gray ramp (about 62..125), not 0..255."""
    from pydicom.dataset import Dataset

    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 12]
    lut.LUTData = np.arange(4096, dtype=np.uint16).tobytes()
    arr = _ramp(np.uint16, 1000, 2000)
    out = dicom_to_array(write_dicom(tmp_path / "lut12.dcm", arr, bits_stored=12, VOILUTSequence=[lut]))
    np.testing.assert_allclose(out, arr.astype(float) / 4095 * 255, atol=1)
    assert (out.min(), out.max()) == (62, 125)


def test_dicom_without_file_meta_and_multiframe(tmp_path, write_dicom):
    arr = np.stack([_ramp(np.uint16, 0, 1000), _ramp(np.uint16, 1000, 0)])
    path = write_dicom(tmp_path / "old.img", arr, meta=False)     # no preamble, no DICM, odd suffix
    assert path.read_bytes()[128:132] != b"DICM"
    out = dicom_to_array(path)
    assert out.shape == (8, 32) and out[0, 0] == 0 and out[0, -1] == 255   # first frame only
    # force-read by suffix .dcm works too and load_image returns RGB
    shutil.copy(path, tmp_path / "old.dcm")
    assert load_image(tmp_path / "old.dcm").mode == "RGB"


def test_missing_decoder_names_the_package(cxr_data, monkeypatch):
    import pydicom.pixels

    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda uid: SimpleNamespace(is_available=False))
    with pytest.raises(ImageError, match=r"RG1_J2KI.dcm.*JPEG 2000.*pip install pylibjpeg pylibjpeg-openjpeg"):
        load_image(cxr_data / "dicom" / "RG1_J2KI.dcm")


# --- PNG/JPEG modes ------------------------------------------------------------------------------
def test_rgba_nih_png_is_plain_gray_rgb(cxr_data):
    path = cxr_data / "nih_bbox" / "00001369_000.png"      # the RGBA one (alpha 255 everywhere)
    assert Image.open(path).mode == "RGBA"
    a = np.asarray(load_image(path))
    assert a.shape == (1024, 1024, 3)
    np.testing.assert_array_equal(a, np.asarray(Image.open(path).convert("RGB")))


@pytest.mark.parametrize("make, check", [
    # 16-bit gray PNG: scaled by its own range (PIL alone would clip everything above 255 to white)
    (lambda: Image.fromarray(_ramp(np.uint16, 0, 60000)), lambda a: a[0, 0] == 0 and a[0, -1] == 255
     and (np.diff(a[0].astype(int)) >= 0).all() and len(np.unique(a)) > 20),
    # gray + alpha: transparent pixels become black, opaque ones keep their gray
    (lambda: Image.fromarray(np.dstack([np.full((8, 32), 200, np.uint8),
                                        np.tile([0, 255], (8, 16)).astype(np.uint8)]), "LA"),
     lambda a: a[0, 0] == 0 and a[0, 1] == 200),
    # float image (mode F): own min-max
    (lambda: Image.fromarray(_ramp(np.float32, -1, 1)), lambda a: a[0, 0] == 0 and a[0, -1] == 255),
])
def test_png_modes(tmp_path, make, check):
    path = tmp_path / "x.tiff"
    make().save(path)
    a = np.asarray(load_image(path))[..., 0]
    assert check(a), a[0]


# --- bad files --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, content", [
    ("truncated.png", "truncated"),                  # the first 2 kB of a real PNG: header fine, pixels cut off
    ("garbage.png", b"this is not an image at all"),  # not an image
    ("empty.jpg", b""),                               # empty file
    ("garbage.dcm", b"\x00" * 300),                   # a .dcm that is not DICOM
    ("report.dcm", "no-pixels"),                      # a valid DICOM without pixel data
    ("missing.png", None),                            # no file at all
])
def test_bad_files_raise_image_error_naming_the_file(cxr_data, tmp_path, name, content):
    path = tmp_path / name
    if content == "truncated":
        path.write_bytes((cxr_data / "tbx11k" / "h0001.png").read_bytes()[:2000])
    elif content == "no-pixels":
        from pydicom.dataset import Dataset, FileMetaDataset
        from pydicom.uid import ExplicitVRLittleEndian

        ds = Dataset()
        ds.PatientName = "x"
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.save_as(path, implicit_vr=False, little_endian=True)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ImageError, match=name):
        load_image(path)


# --- pixel budget ------------------------------------------------------------------------------------
@pytest.mark.slow  # importing transformers' image processor takes seconds on a busy machine
@pytest.mark.parametrize("h, w, lo, hi", [
    (1024, 1024, 32 * 32, 512 * 512),     # square, scaled down to the budget
    (1955, 1841, 32 * 32, 256 * 32 * 32),  # non-square, down
    (440, 440, 32 * 32, 16384 * 32 * 32),  # only rounded to multiples of 32
    (100, 60, 256 * 256, 512 * 512),       # small image scaled up to min_pixels
    (3000, 2500, 4 * 32 * 32, 1280 * 32 * 32),  # a large DICOM at the paper-scale budget
    (37, 1000, 32 * 32, 64 * 64),          # very wide: the short side stays at least one factor
])
def test_smart_resize_matches_transformers(h, w, lo, hi):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        smart_resize as reference,
    )

    assert smart_resize(h, w, 32, lo, hi) == reference(h, w, factor=32, min_pixels=lo, max_pixels=hi)


def test_fit_pixels_budget():
    img = Image.new("RGB", (1841, 1955))
    out = fit_pixels(img, max_pixels=256 * 256)
    assert out.width % 32 == 0 and out.height % 32 == 0 and out.width * out.height <= 256 * 256
    assert fit_pixels(img) is img


def _crop(a, box: Box, size=(32, 32)):
    x1, y1, x2, y2 = box.to_pixels(a.shape[1], a.shape[0])
    return np.asarray(Image.fromarray(a[int(y1):int(y2), int(x1):int(x2)]).resize(size), dtype=float).ravel()


@pytest.mark.slow
@pytest.mark.parametrize("budget", [256 * 256, 320 * 192, 128 * 128])
def test_real_boxes_land_on_the_same_pixels_after_resizing(cxr_data, budget):
    """The NIH expert boxes cut out the same anatomy from the 1024-pixel original and from the
    image resized to the Qwen3-VL budget (crops compared after scaling both to 32x32)."""
    with gzip.open(cxr_data / "nih_bbox" / "BBox_List_2017.csv.gz", "rt") as f:
        rows = [line.strip().split(",") for line in f][1:]
    have = {p.name for p in (cxr_data / "nih_bbox").glob("*.png")}
    rows = [r for r in rows if r[0] in have]
    assert len(rows) >= 12
    for name, label, x, y, w, h in rows:
        box = Box.from_xywh_pixels(float(x), float(y), float(w), float(h), 1024, 1024, label)
        full = np.asarray(load_image(cxr_data / "nih_bbox" / name))[..., 0]
        small = np.asarray(load_image(cxr_data / "nih_bbox" / name, max_pixels=budget))[..., 0]
        # compare at the box's size in the small image, so only placement (not lost detail) matters
        x1, y1, x2, y2 = box.to_pixels(small.shape[1], small.shape[0])
        size = (max(4, min(32, round(x2 - x1))), max(4, min(32, round(y2 - y1))))
        a, b = _crop(full, box, size), _crop(small, box, size)
        assert np.corrcoef(a, b)[0, 1] > 0.9, (name, label)
        # and a box shifted by a fifth of its size no longer matches as well
        shifted = Box(min(box.x1 + 0.2 * (box.x2 - box.x1), 0.9), box.y1, min(box.x2 + 0.2 * (box.x2 - box.x1), 1),
                      box.y2)
        assert np.corrcoef(a, _crop(small, shifted, size))[0, 1] < np.corrcoef(a, b)[0, 1]


@pytest.mark.parametrize("size, budget", [((700, 500), 128 * 128), ((512, 512), 200 * 120), ((300, 900), 64 * 64 * 4)])
def test_drawn_box_stays_on_its_square(tmp_path, size, budget):
    """A white square at a known pixel box, through a TBX11K-style COCO file and the adapter,
    then resized to a budget whose rounding changes the aspect ratio: the box still covers it."""
    from radrl.data.sources import tbx11k

    w, h = size
    x, y, bw, bh = 0.31 * w, 0.42 * h, 0.25 * w, 0.2 * h
    a = np.zeros((h, w), np.uint8)
    a[round(y):round(y + bh), round(x):round(x + bw)] = 255
    (tmp_path / "imgs" / "tb").mkdir(parents=True)
    Image.fromarray(a).save(tmp_path / "imgs" / "tb" / "s.png")
    coco = {"categories": [{"id": 1, "name": "square"}],
            "images": [{"id": 1, "file_name": "tb/s.png", "width": w, "height": h}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [x, y, bw, bh]}]}
    (tmp_path / "TBX11K_train.json").write_text(json.dumps(coco))
    (sample,) = list(tbx11k.read(tmp_path))
    img = np.asarray(load_image(sample.image, max_pixels=budget))[..., 0].astype(float)
    assert img.shape[0] % 32 == 0 and img.shape[1] % 32 == 0
    x1, y1, x2, y2 = sample.boxes[0].to_pixels(img.shape[1], img.shape[0])
    inside = img[int(y1) + 2:int(y2) - 2, int(x1) + 2:int(x2) - 2]
    ring = np.ones_like(img, bool)
    ring[max(int(y1) - 3, 0):int(y2) + 3, max(int(x1) - 3, 0):int(x2) + 3] = False
    assert inside.mean() > 240 and img[ring].max() < 30


@pytest.mark.slow
def test_smart_resize_matches_transformers_on_random_sizes():
    """Property check over random sizes and budgets (the table above holds the named cases)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        smart_resize as reference,
    )

    @settings(max_examples=300, deadline=None)
    @given(st.integers(16, 6000), st.integers(16, 6000), st.integers(1, 64), st.integers(1, 16384))
    def check(h, w, lo_patches, hi_patches):
        lo, hi = lo_patches * 32 * 32, max(lo_patches, hi_patches) * 32 * 32
        if max(h, w) / min(h, w) > 200:
            return
        ours = smart_resize(h, w, 32, lo, hi)
        assert ours == reference(h, w, factor=32, min_pixels=lo, max_pixels=hi)
        assert ours[0] % 32 == 0 and ours[1] % 32 == 0

    check()
