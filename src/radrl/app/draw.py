"""Boxes drawn on a radiograph with the finding's name on each, at the image's own resolution.

Why not eval's box images (``radrl.eval.report.boxes_image``): those compare a prediction with a reference
(red against green, no names, enlarged twice for a report page). A user looking at one answer needs to know which
box is which finding, and wants the picture at the size of the file they gave, so a box's pixels here are the
pixels ``radrl predict`` writes.

>>> from radrl.data.boxes import Box
>>> img = draw_boxes(Image.new("RGB", (400, 300)), [Box(0.25, 0.5, 0.75, 0.9, "Cardiomegaly")])
>>> img.size, img.getpixel((100, 200)), img.getpixel((200, 200))
((400, 300), (230, 25, 75), (0, 0, 0))
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from radrl.data.boxes import Box

# Distinct colours that read on gray radiographs (Sasha Trubetskoy's list, the gray ones left out); one per label.
PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212))


def draw_boxes(image: Image.Image, boxes: Sequence[Box], labels: bool = True) -> Image.Image:
    """A copy of ``image`` (as RGB, same size) with each box outlined in its label's colour and, with
    ``labels``, the label written on a filled tag at the box's top-left corner (inside the image). Line width and
    text size follow the image size, so a 3,000-pixel film and a 256-pixel one look alike."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    width, height = out.size
    line = max(2, round(min(width, height) / 256))
    font = ImageFont.load_default(size=max(10, round(min(width, height) / 36)))
    colours: dict[str | None, tuple[int, int, int]] = {}
    for box in boxes:
        colour = colours.setdefault(box.label, PALETTE[len(colours) % len(PALETTE)])
        x1, y1, x2, y2 = box.to_pixels(width, height)
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=line)
        if labels and box.label:
            left, top, right, bottom = draw.textbbox((0, 0), box.label, font=font)
            tag_w, tag_h = right - left + 2 * line, bottom - top + 2 * line
            tx = min(max(0.0, x1), max(0.0, width - tag_w))
            ty = y1 - tag_h if y1 - tag_h >= 0 else y1   # above the box, else just inside its top edge
            draw.rectangle((tx, ty, tx + tag_w, ty + tag_h), fill=colour)
            ink = (0, 0, 0) if sum(colour) > 450 else (255, 255, 255)
            draw.text((tx + line - left, ty + line - top), box.label, fill=ink, font=font)
    return out
