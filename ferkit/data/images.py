"""Decode images robustly: any mode, bit depth or orientation, with bounded memory.

Pillow is used rather than ``cv2.imdecode`` because it reports truncated files instead of
silently returning a half-grey picture, and it understands EXIF orientation, CMYK and
16-bit data.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

FACE_SIZE = 48
# The picture files ferkit reads (all that Pillow decodes that people keep faces in), in datasets
# and as prediction sources alike.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                              ".avif", ".ppm", ".pgm", ".pbm", ".pnm"})
# Pictures people keep that ferkit cannot decode (phones' HEIC, cameras' raw files, layered or
# vector files): in a folder they are reported, not passed over in silence.
UNREADABLE_PICTURE_EXTENSIONS = frozenset({".heic", ".heif", ".jxl", ".dng", ".cr2", ".cr3", ".nef", ".arw",
                                           ".orf", ".rw2", ".raf", ".raw", ".psd", ".svg"})
# The Pillow decoders ferkit opens pictures with: those of the extensions above, and no others, so
# that bytes claiming another format (EPS runs Ghostscript; DDS, SPIDER and the like fail in odd
# ways) are "not an image or unsupported format" wherever they come from (a folder, an upload).
READABLE_FORMATS = tuple(sorted({fmt for ext, fmt in Image.registered_extensions().items() if ext in IMAGE_EXTENSIONS}))
# Photos larger than this are downscaled while decoding (JPEG draft mode) or refused, so one
# huge upload cannot exhaust memory.
MAX_PIXELS = 40_000_000
# Pillow refuses pictures past twice its Image.MAX_IMAGE_PIXELS (about 179 Mpixel) before decoding.
# That setting is process-wide, and a library must not loosen a check in its users' own code; so a
# JPEG past it (a phone's 200 MP mode) is opened without it instead, up to this many times
# ``max_pixels``, and decoded at 1/4 or 1/8 of its size. (The decoder's memory grows with the file's
# full size for progressive JPEGs, hence a ceiling at all.)
JPEG_CEILING_FACTOR = 8


class ImageDecodeError(ValueError):
    """The file is not a readable image; the message says why (no file name: callers add it)."""


def starts_like_a_picture(data: bytes) -> bool:
    """Whether ``data`` (a file's first 16 bytes will do) starts as a JPEG, PNG, GIF, WebP, BMP, TIFF or
    AVIF file does: a damaged picture, then, rather than another kind of file."""
    return data.startswith((b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")) or \
        (data[:4] == b"RIFF" and data[8:12] == b"WEBP") or data[4:12] in (b"ftypavif", b"ftypavis")


def read_image(source: str | os.PathLike | bytes, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode a file path or encoded bytes into an 8-bit array: H x W (gray) or H x W x 3 (BGR).

    A JPEG over ``max_pixels`` comes back downscaled (see :func:`read_image_scaled`)."""
    return read_image_scaled(source, max_pixels=max_pixels)[0]


def read_image_scaled(source: str | os.PathLike | bytes, *,
                      max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, float]:
    """:func:`read_image`, and the scale it was decoded at: array pixels per pixel of the file
    (1.0, or 1/2, 1/4, 1/8 for a JPEG over ``max_pixels``), so that boxes found in the array can be
    given in the file's pixels."""
    try:
        with warnings.catch_warnings():
            # Pillow warns of a "decompression bomb" past MAX_IMAGE_PIXELS; ferkit has its own, lower
            # limit (a JPEG that large is decoded at a fraction of its size, anything else refused).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Pillow's notes on a picture it did decode ("Corrupt EXIF data", "Tag data larger than file"):
            # they name no file, and come only on an uncached load; the pixels are what counts.
            warnings.filterwarnings("ignore", module=r"PIL\.")
            return _decode(source, max_pixels)
    except ImageDecodeError:
        raise
    except FileNotFoundError:
        raise ImageDecodeError("no such file") from None
    except PermissionError:
        raise ImageDecodeError("permission denied") from None
    except IsADirectoryError:
        raise ImageDecodeError("a folder, not an image file") from None
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image or unsupported format") from None
    except Image.DecompressionBombError:
        raise ImageDecodeError("image too large") from None
    except MemoryError:
        raise
    except Exception as exc:  # OSError, SyntaxError, ValueError; a decoder's RuntimeError, struct.error...
        raise ImageDecodeError(f"corrupt or truncated image ({exc or type(exc).__name__})") from None


def _decode(source: str | os.PathLike | bytes, max_pixels: int) -> tuple[np.ndarray, float]:
    """The decoding :func:`read_image_scaled` does; its errors become :class:`ImageDecodeError` there."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageDecodeError("empty file")
        file: io.BytesIO | Path = io.BytesIO(bytes(source))
    else:
        file = Path(source).expanduser()  # "~/photo.jpg", as predict_many and shells take it
        if file.stat().st_size == 0:
            raise ImageDecodeError("empty file")
    opened = _open(file, max_pixels)
    with opened as image:  # closes the file even when decoding fails
        full_width = image.width
        if image.width * image.height > max_pixels:
            # JPEG can decode at 1/2, 1/4 or 1/8 scale without ever holding the full image: the
            # largest that fits (faces in a group photo are small enough already).
            factor = next((k for k in (2, 4) if image.width * image.height <= max_pixels * k * k), 8)
            image.draft(image.mode, (-(-image.width // factor), -(-image.height // factor)))
            if image.width * image.height > max_pixels:
                raise ImageDecodeError(
                    f"image too large ({image.width}x{image.height}; limit {max_pixels:,} pixels)"
                )
        image.load()
        scale = image.width / full_width
        ImageOps.exif_transpose(image, in_place=True)  # a copy would be one more full-size picture
        return _to_array(image), scale


def _open(file: io.BytesIO | Path, max_pixels: int) -> Image.Image:
    """Image.open, and a JPEG past Pillow's bomb limit opened without it (see JPEG_CEILING_FACTOR)."""
    try:
        return Image.open(file, formats=READABLE_FORMATS)
    except Image.DecompressionBombError:
        if isinstance(file, io.BytesIO):
            file.seek(0)
            head = file.read(16)
            file.seek(0)
        else:
            with open(file, "rb") as handle:
                head = handle.read(16)
        if not head.startswith(b"\xff\xd8\xff"):
            raise
    image = JpegImagePlugin.JpegImageFile(file if isinstance(file, io.BytesIO) else str(file))  # reads the header only
    if image.width * image.height > JPEG_CEILING_FACTOR * max_pixels:
        image.close()
        raise ImageDecodeError(f"image too large ({image.width}x{image.height}; limit "
                               f"{JPEG_CEILING_FACTOR * max_pixels:,} pixels for a JPEG)")
    return image


def pil_to_array(image: Image.Image) -> np.ndarray:
    """A PIL image of any mode -> uint8 gray H x W or BGR H x W x 3, upright by its EXIF orientation."""
    if image.width * image.height == 0:
        raise ImageDecodeError("empty image")
    try:
        return _to_array(ImageOps.exif_transpose(image))
    except ImageDecodeError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"cannot convert the {image.mode} image ({exc})") from None


def _to_array(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return levels_to_uint8(np.asarray(image))
    if image.mode == "L":
        return np.asarray(image, dtype=np.uint8)
    if image.mode in ("1", "P", "LA", "PA", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "RGB", "RGBX"):
        # Few full-size copies: a 40-megapixel photo is 120 MB a copy (each one was once made twice).
        if image.mode in ("LA", "PA", "RGBA") or (image.mode == "P" and "transparency" in image.info):
            # Composite transparent pixels on white, as a viewer shows them.
            rgba = image if image.mode == "RGBA" else image.convert("RGBA")
            rgb_image = Image.new("RGB", rgba.size, (255, 255, 255))
            rgb_image.paste(rgba, mask=rgba.getchannel("A"))
            del rgba
        else:
            rgb_image = image if image.mode == "RGB" else image.convert("RGB")
        rgb = np.array(rgb_image, dtype=np.uint8)  # a writable copy, swapped to BGR in place
        del rgb_image
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR, dst=rgb)
    raise ImageDecodeError(f"unsupported image mode {image.mode}")


# Floats up to this peak are read as 0-1: resampling a 0-1 picture (cubic, Lanczos) overshoots 1 a little,
# and a 0-255 picture this dark would be black either way.
FLOAT_UNIT_PEAK = 1.5


def levels_to_uint8(data: np.ndarray) -> np.ndarray:
    """Pixel values of another range as uint8: 16-bit (0-65535), floats in 0-1, or 0-255.
    The range is guessed from the type and the largest value, as image viewers do: a 16-bit container
    holding values up to 255 holds 8-bit levels (a 16-bit picture that dark would be black)."""
    if data.dtype == bool or not (np.issubdtype(data.dtype, np.integer) or np.issubdtype(data.dtype, np.floating)):
        raise TypeError(f"pixel values of type {data.dtype}: give numbers (uint8 0-255, 16-bit, or floats 0-1 or "
                        "0-255); a mask of booleans is no picture")
    is_float = np.issubdtype(data.dtype, np.floating)
    # float32, not float64: a large in-memory image costs half as much (levels up to 65535 are exact in it).
    data = np.nan_to_num(data.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0, copy=False)
    if data.size and float(data.min()) < 0:  # e.g. a tensor normalised to -1..1: clipped, it would read wrong
        raise ValueError(f"negative pixel values (down to {float(data.min()):.3g}): give levels 0-255 or 0-1, not "
                         "normalised values")
    peak = float(data.max()) if data.size else 0.0
    top = 65535.0 if peak > 255 else 1.0 if is_float and peak <= FLOAT_UNIT_PEAK else 255.0
    data *= np.float32(255.0 / top)
    return np.clip(data, 0, 255, out=data).astype(np.uint8)


def to_gray(image: np.ndarray) -> np.ndarray:
    """BGR or gray uint8 -> gray uint8."""
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def to_bgr(image: np.ndarray) -> np.ndarray:
    """Gray, BGR or BGRA uint8 -> BGR uint8 (alpha dropped, as :func:`to_gray` drops it)."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def rescale(image: np.ndarray, scale: float) -> np.ndarray:
    """``image`` resized by ``scale`` (area averaging when it shrinks), each side at least one pixel:
    cv2's ``fx``/``fy`` would round a 1 x 3000 strip down to nothing and raise."""
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def to_face_size(gray: np.ndarray) -> np.ndarray:
    """A gray picture of any size as a 48x48 face (area averaging when it shrinks)."""
    if gray.shape == (FACE_SIZE, FACE_SIZE):
        return np.ascontiguousarray(gray)
    interpolation = cv2.INTER_AREA if min(gray.shape) > FACE_SIZE else cv2.INTER_LINEAR
    return cv2.resize(gray, (FACE_SIZE, FACE_SIZE), interpolation=interpolation)


def decode_face(path: str | os.PathLike) -> tuple[np.ndarray, bool]:
    """A 48x48 grayscale face from an image file, and whether it had to be converted."""
    image = read_image(path)
    converted = image.ndim != 2 or image.shape != (FACE_SIZE, FACE_SIZE)
    return to_face_size(to_gray(image)), converted


def normalise_array(array: np.ndarray) -> np.ndarray:
    """A decoded-image-like array (H x W, H x W x 1/3/4, any numeric type) as gray or BGR uint8;
    transparency is flattened onto white, as decoded files are."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageDecodeError(f"array of shape {array.shape}: expected H x W, H x W x 3 or H x W x 4")
    if array.size == 0:
        raise ImageDecodeError("empty array")
    if array.dtype != np.uint8:
        array = levels_to_uint8(array)
    if array.ndim == 3 and array.shape[2] == 4:  # transparent pixels on white, as decoded files are
        alpha = array[:, :, 3:].astype(np.float32) / 255.0
        array = (array[:, :, :3] * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    return np.ascontiguousarray(array)


def as_face_crops(crops: np.ndarray | list) -> np.ndarray:
    """Face crops as given by a user -- N x H x W, one H x W [x 1/3/4] crop, or a list of crops, any
    numeric type -- as N x 48 x 48 gray uint8 (other sizes resized)."""
    if isinstance(crops, np.ndarray) and crops.ndim == 3 and crops.dtype == np.uint8 \
            and crops.shape[1:] == (FACE_SIZE, FACE_SIZE):
        return np.ascontiguousarray(crops)
    if not isinstance(crops, (np.ndarray, Image.Image, str, os.PathLike, bytes)) and crops is not None \
            and (hasattr(crops, "__array__") or isinstance(crops, (list, tuple))):
        # A torch tensor, or nested lists of numbers, is an array: read element by element it would be
        # taken for a batch of rows.  Lists of crops of different sizes stay lists.
        try:
            array = np.asarray(crops)
        except (ValueError, TypeError, RuntimeError):
            array = None
        if array is not None and array.dtype.kind in "biuf" and array.ndim >= 2:
            crops = array
    if crops is None or isinstance(crops, (str, os.PathLike, bytes)) or not hasattr(crops, "__len__") \
            and not isinstance(crops, Image.Image):
        raise TypeError(f"crops {crops!r}: give face arrays (N x H x W, or a list of H x W [x 3] arrays); "
                        "predict() takes files")
    if isinstance(crops, Image.Image):
        crops = [crops]
    if isinstance(crops, np.ndarray) and (crops.ndim not in (2, 3, 4) or crops.ndim == 4 and crops.shape[3] not in (1, 3, 4)):
        raise ImageDecodeError(f"crops of shape {crops.shape}: expected N x H x W, N x H x W x 3, or one H x W [x 3] crop")
    # One crop, gray (H x W) or colour (H x W x 3/4/1), rather than a stack of N gray crops H x W
    # (no stack of 48 crops 3 pixels wide is meant).
    single = isinstance(crops, np.ndarray) and (
        crops.ndim == 2 or (crops.ndim == 3 and crops.shape[2] in (1, 3, 4) and min(crops.shape[:2]) > 4))
    out = []
    for crop in ([crops] if single else crops):
        if crop is None or isinstance(crop, (str, os.PathLike, bytes)):
            raise TypeError(f"crop {crop!r}: crops are face arrays; predict() takes files")
        array = pil_to_array(crop) if isinstance(crop, Image.Image) else np.asarray(crop)
        out.append(to_face_size(to_gray(normalise_array(array))))
    return np.stack(out) if out else np.zeros((0, FACE_SIZE, FACE_SIZE), dtype=np.uint8)
