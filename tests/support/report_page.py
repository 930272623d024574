"""Reading a rendered evaluation report: its sections, images and text, and whether a figure is a real PNG."""
import html.parser
import io
from pathlib import Path
from typing import Dict, List

from PIL import Image


class ReportPage(html.parser.HTMLParser):
  """Collects section ids, images (alt -> src) and text of a report page."""

  def __init__(self):
    super().__init__()
    self.sections: List[str] = []
    self.images: Dict[str, str] = {}
    self.text: List[str] = []

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    if tag == "section":
      self.sections.append(attrs["id"])
    if tag == "img":
      self.images[attrs["alt"]] = attrs["src"]

  def handle_data(self, data):
    self.text.append(data)


def parse(path: Path) -> ReportPage:
  """The report page at `path`, parsed."""
  page = ReportPage()
  page.feed(path.read_text(encoding="utf-8"))
  page.close()
  return page


def assert_png_not_blank(png: bytes, name: str) -> None:
  """`png` is a complete PNG of at least 300 x 200 pixels with more than one colour."""
  image = Image.open(io.BytesIO(png))
  image.verify()  # raises on a truncated or corrupt file
  image = Image.open(io.BytesIO(png)).convert("RGB")
  assert image.format is None or image.format == "PNG"
  assert image.width >= 300 and image.height >= 200, (name, image.size)
  colours = image.getcolors(maxcolors=1 << 16)
  assert colours is None or len(colours) > 1, f"{name} is a single colour"
