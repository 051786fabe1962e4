"""Images: PNG, JPEG and DICOM files to 8-bit RGB, and Qwen3-VL's pixel budget.

Why one decoder: a chest radiograph on disk is rarely a plain 8-bit RGB picture. NIH PNGs
are gray (one is RGBA), some datasets ship 16-bit PNGs, and DICOMs store raw detector
values that need the modality transform (rescale slope/intercept), the VOI transform
(a VOI LUT or a window centre/width) and, for MONOCHROME1, an inversion before they look
like the radiograph a radiologist reads (bone white, air black). Every stage that opens
an image (dataset preparation, training, evaluation) goes through ``load_image`` so the
model sees the same pixels in training and in evaluation.

>>> img = load_image("chest.dcm")                                   # doctest: +SKIP
>>> img.mode, img.size                                              # doctest: +SKIP
('RGB', (440, 440))

Pixel budget: Qwen3-VL's image processor resizes every image so that both sides are
multiples of ``patch_size * merge_size`` (16 * 2 = 32) and the area lies within
``min_pixels``-``max_pixels``, keeping the aspect ratio as far as it can
(``smart_resize``). Boxes are stored as fractions of the image (``radrl.data.boxes.Box``),
so they stay on the same anatomy under this resize; ``tests/data/test_images.py`` checks
that on real NIH images.

>>> smart_resize(1024, 1024, min_pixels=32 * 32, max_pixels=512 * 512)
(512, 512)
>>> smart_resize(1955, 1841, min_pixels=32 * 32, max_pixels=256 * 32 * 32)
(512, 480)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

# Qwen3-VL: patch 16 x spatial merge 2 -> both sides multiples of 32.
QWEN3_VL_FACTOR = 32
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")

# DICOM transfer syntax -> the pip packages whose pydicom plugins decode it (when pydicom alone cannot).
_DECODER_PACKAGES = {
    "JPEG 2000": "pylibjpeg pylibjpeg-openjpeg",
    "JPEG-LS": "pyjpegls (or pylibjpeg pylibjpeg-libjpeg)",
    "JPEG": "pylibjpeg pylibjpeg-libjpeg",
    "RLE": "pylibjpeg pylibjpeg-rle",
    "High-Throughput JPEG 2000": "pylibjpeg pylibjpeg-openjpeg",
}


class ImageError(ValueError):
    """An image that cannot be read; the message names the file and the fix."""


def is_dicom(path: str | Path) -> bool:
    """DICOM by suffix, or by the ``DICM`` magic at byte 128 for files named otherwise."""
    path = Path(path)
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    if path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp"):
        return False
    try:
        with path.open("rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def smart_resize(height: int, width: int, factor: int = QWEN3_VL_FACTOR, min_pixels: int = 32 * 32,
                 max_pixels: int = 16384 * 32 * 32) -> tuple[int, int]:
    """(height, width) that Qwen3-VL's processor resizes an image to.

    Same rule as ``transformers``' ``smart_resize`` (Qwen2-VL/Qwen3-VL): round each side to a
    multiple of ``factor``; if the area exceeds ``max_pixels`` scale both sides down by the
    same ratio (flooring to ``factor``), if it is under ``min_pixels`` scale up (ceiling).

    >>> smart_resize(440, 440)
    (448, 448)
    """
    if min(height, width) <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio must be under 200 for Qwen3-VL, got {width}x{height}")
    h = round(height / factor) * factor
    w = round(width / factor) * factor
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def fit_pixels(img: Image.Image, min_pixels: int | None = None, max_pixels: int | None = None,
               factor: int = QWEN3_VL_FACTOR) -> Image.Image:
    """Resize ``img`` as Qwen3-VL's processor would for this budget (bicubic, as it does).

    Doing it here, once, lets preparation write images at their training size and lets
    plots show exactly what the model saw; normalized boxes need no change.

    >>> fit_pixels(Image.new("RGB", (1024, 1024)), max_pixels=256 * 256).size
    (256, 256)
    """
    if min_pixels is None and max_pixels is None:
        return img
    h, w = smart_resize(img.height, img.width, factor, min_pixels or factor * factor,
                        max_pixels or 16384 * factor * factor)
    return img if (w, h) == img.size else img.resize((w, h), Image.BICUBIC)


def load_image(path: str | Path, min_pixels: int | None = None, max_pixels: int | None = None,
               factor: int = QWEN3_VL_FACTOR, window: tuple[float, float] | None = None) -> Image.Image:
    """Any chest radiograph file -> 8-bit RGB PIL image (optionally resized to a pixel budget).

    PNG/JPEG: gray, gray+alpha, RGBA and palette images become RGB; 16-bit and float images
    are scaled to 0-255 by their own range (PIL's own conversion would clip them to white).
    DICOM: see ``dicom_to_array``; ``window`` (centre, width) replaces the file's own window (DICOM only).

    >>> load_image("00001369_000.png", max_pixels=512 * 512).size   # doctest: +SKIP
    (512, 512)
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: image file not found; check --root and the dataset layout")
    if is_dicom(path):
        arr = dicom_to_array(path, window=window)
        img = Image.fromarray(arr).convert("RGB")
    else:
        try:
            with Image.open(path) as src:
                src.load()
                img = _pil_to_rgb(src)
        except Image.DecompressionBombError as e:
            raise ImageError(f"{path}: too large to decode safely ({e}); downsample it first") from None
        except (OSError, ValueError, SyntaxError) as e:
            raise ImageError(f"{path}: not a readable image ({e}); re-download or remove the file") from None
    return fit_pixels(img, min_pixels, max_pixels, factor)


def as_rgb(img: Image.Image) -> Image.Image:
    """An image already in memory -> 8-bit RGB by ``load_image``'s rules (16-bit and float scaled by their own
    range, alpha dropped onto black), so a PIL image given to ``radrl.app`` looks as its file would.

    >>> rgb = as_rgb(Image.fromarray(np.array([[1000, 4000]], dtype=np.uint16)))   # 16-bit gray
    >>> rgb.mode, rgb.getpixel((0, 0)), rgb.getpixel((1, 0))
    ('RGB', (0, 0, 0), (255, 255, 255))
    """
    return _pil_to_rgb(img)


def _pil_to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return Image.fromarray(_to_uint8(np.asarray(img, dtype=np.float64))).convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Drop alpha onto black, as the radiograph's own background is black.
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    return img.convert("RGB")


def image_header(path: str | Path) -> tuple[int, int, str | None]:
    """(width, height, view) from the file header; the view is DICOM's ``ViewPosition`` (PA, AP,
    LL, ...) when the file is a DICOM that records it, else None.

    >>> image_header("stage_2_train_images/0004cfab.dcm")            # doctest: +SKIP
    (1024, 1024, 'PA')
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: image file not found")
    if is_dicom(path):
        ds = _read_dicom(path, stop_before_pixels=True)
        try:
            return int(ds.Columns), int(ds.Rows), (str(ds.get("ViewPosition", "")).strip().upper() or None)
        except (AttributeError, TypeError, ValueError):
            raise ImageError(f"{path}: DICOM without usable Rows/Columns; it holds no image") from None
    try:
        with Image.open(path) as img:
            return (*img.size, None)
    except Image.DecompressionBombError as e:   # PIL refuses a header claiming over 179 MP (a decompression bomb)
        raise ImageError(f"{path}: too large to decode safely ({e}); downsample it first") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{path}: not a readable image ({e}); re-download or remove the file") from None


# --- DICOM -------------------------------------------------------------------------------------
def _read_dicom(path: Path, stop_before_pixels: bool = False):
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    try:
        # force=True: old files (e.g. CR-MONO1-10-chest) have no 128-byte preamble and no file meta.
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=stop_before_pixels)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError) as e:
        raise ImageError(f"{path}: not a readable DICOM file ({e}); re-download or remove it") from None
    if "PixelData" not in ds and not stop_before_pixels:
        raise ImageError(f"{path}: DICOM without pixel data (a structured report or a truncated file?)")
    if "Rows" not in ds:
        raise ImageError(f"{path}: not a DICOM image (no Rows element; is it a DICOM file at all?)")
    meta = ds.file_meta
    if "TransferSyntaxUID" not in meta:
        # No file meta header: the transfer syntax is the encoding pydicom detected while reading.
        implicit, little = ds.original_encoding
        if not little:
            raise ImageError(f"{path}: big-endian DICOM without a file meta header is not supported")
        meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    return ds


def _check_decoder(ds, path: Path) -> None:
    """A compressed transfer syntax needs a decoder plugin; say which package provides it."""
    from pydicom.pixels import get_decoder

    uid = ds.file_meta.TransferSyntaxUID
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise ImageError(f"{path}: transfer syntax {uid.name} ({uid}) has no pydicom decoder; convert the file "
                         "with `gdcmconv --raw` or dcmtk's `dcmdjpeg`") from None
    if not decoder.is_available:
        name = uid.name
        packages = next((p for key, p in _DECODER_PACKAGES.items() if key in name), "pylibjpeg plugins or gdcm")
        raise ImageError(f"{path}: pixel data is compressed as {name} ({uid}) and no decoder plugin is installed; "
                         f"pip install {packages}  (or: pip install 'radrl[dicom]')")


def dicom_to_array(path: str | Path, window: tuple[float, float] | None = None) -> np.ndarray:
    """A DICOM radiograph -> ``uint8`` array as displayed: shape (rows, cols) gray or (rows, cols, 3) colour.

    Order of the standard display pipeline (PS3.3 C.11): decode (compressed syntaxes
    through pydicom's plugins) -> modality LUT / rescale slope and intercept -> VOI LUT (scaled by its
    output range, ``LUTDescriptor[2]`` bits), or
    the first window centre/width (LINEAR, LINEAR_EXACT or SIGMOID), or else the image's
    own min-max -> 0-255 -> inverted for MONOCHROME1. Multi-frame files give their first frame.
    ``window`` (centre, width in modality units, LINEAR) replaces the file's VOI step: what a viewer's
    window/level control does (``dicom_window`` gives the file's own as a starting point).
    """
    from pydicom.pixels import apply_modality_lut

    path = Path(path)
    ds = _read_dicom(path)
    _check_decoder(ds, path)
    try:
        arr = ds.pixel_array
    except Exception as e:  # noqa: BLE001 - pydicom and its plugins raise many types for bad pixel data
        raise ImageError(f"{path}: cannot decode the pixel data ({type(e).__name__}: {e})") from None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if frames > 1:
        arr = arr[0]
    if samples == 3:  # colour DICOM (secondary capture): pydicom already returns RGB
        return _to_uint8(arr.astype(np.float64)) if arr.dtype != np.uint8 else arr
    arr = apply_modality_lut(arr, ds)   # keeps integer data integer, as a VOI LUT lookup needs
    if window is not None:
        out = _window(arr.astype(np.float64), float(window[0]), float(window[1]))
    elif "VOILUTSequence" in ds:
        out = _voi_lut(arr, ds, path)
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        out = _window(arr.astype(np.float64), _first(ds.WindowCenter), _first(ds.WindowWidth),
                      str(ds.get("VOILUTFunction", "LINEAR")))
    else:
        out = _to_uint8(arr)
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        out = 255 - out
    return out


def dicom_window(path: str | Path) -> tuple[float, float, float, float]:
    """(centre, width, lowest, highest) of a gray DICOM in modality units (after rescale): the file's first
    window where it has one, else the window spanning its values; lowest/highest bound a viewer's controls.

    >>> dicom_window("CR-MONO1-10-chest.dcm")                         # doctest: +SKIP
    (550.0, 1024.0, 0.0, 979.0)
    """
    from pydicom.pixels import apply_modality_lut

    path = Path(path)
    ds = _read_dicom(path)
    _check_decoder(ds, path)
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise ImageError(f"{path}: a colour DICOM has no window to set; view it as it is")
    try:
        arr = ds.pixel_array
    except Exception as e:  # noqa: BLE001 - pydicom and its plugins raise many types for bad pixel data
        raise ImageError(f"{path}: cannot decode the pixel data ({type(e).__name__}: {e})") from None
    arr = np.asarray(apply_modality_lut(arr[0] if int(ds.get("NumberOfFrames", 1) or 1) > 1 else arr, ds),
                     dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if "WindowCenter" in ds and "WindowWidth" in ds:
        return _first(ds.WindowCenter), _first(ds.WindowWidth), lo, hi
    return (lo + hi) / 2, max(hi - lo, 1.0), lo, hi


def _voi_lut(arr: np.ndarray, ds, path: Path) -> np.ndarray:
    """The first VOI LUT applied, its output scaled by the LUT's own output range (``LUTDescriptor[2]``
    bits, PS3.3 C.11.2.1.2): an image that uses part of that range stays as dark or light as the LUT
    makes it, instead of being stretched to its own min-max."""
    from pydicom.pixels import apply_voi_lut

    try:
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
    except (AttributeError, IndexError, TypeError, ValueError):
        raise ImageError(f"{path}: VOI LUT without a valid LUTDescriptor") from None
    if not 1 <= bits <= 16:
        raise ImageError(f"{path}: VOI LUT entries of {bits} bits (expected 1 to 16)")
    lut_out = apply_voi_lut(arr, ds, prefer_lut=True).astype(np.float64)
    return np.rint(np.clip(lut_out / (2**bits - 1), 0, 1) * 255).astype(np.uint8)


def _first(value) -> float:
    """Window centre/width may be multi-valued (several presets); the first is the default one."""
    try:
        return float(value[0])
    except TypeError:
        return float(value)


def _window(x: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 windowing to 0-255."""
    function = function.upper()
    if function == "SIGMOID":
        y = 1.0 / (1.0 + np.exp(-4.0 * (x - center) / max(width, 1e-6)))
    elif function == "LINEAR_EXACT":
        y = (x - center) / max(width, 1e-6) + 0.5
    else:  # LINEAR: width 1 is the standard's degenerate threshold case
        y = (x - (center - 0.5)) / max(width - 1.0, 1e-6) + 0.5
    return np.round(np.clip(y, 0.0, 1.0) * 255.0).astype(np.uint8)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale by the image's own finite min-max (a flat image becomes black)."""
    arr = np.asarray(arr, dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.any():
        return np.zeros(arr.shape, dtype=np.uint8)
    lo, hi = float(arr[finite].min()), float(arr[finite].max())
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    out = (np.where(finite, arr, lo) - lo) / (hi - lo)
    return np.round(out * 255.0).astype(np.uint8)
