"""A few SVG primitives for the benchmark scripts' pictures (best_recipe.py's
training curve, suite_chart.py's suite chart): plain text, no plotting
library, so the pictures need nothing beyond the Python that runs the scripts."""

from xml.sax.saxutils import escape


def _attrs(**kw):
    """Keyword arguments as SVG attributes; a trailing underscore is dropped, other underscores become dashes."""
    return "".join(f' {k.rstrip("_").replace("_", "-")}="{v}"' for k, v in kw.items() if v is not None)


class Svg:
    """A white canvas of w x h pixels with a title centred at the top; render() gives the document."""

    def __init__(self, w, h, title, font_size=12):
        self.w, self.h = w, h
        self.parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
                      f'font-size="{font_size}">',
                      f'<rect width="{w}" height="{h}" fill="white"/>']
        self.text(w / 2, 18, title, anchor="middle", font_size=14)

    def line(self, x1, y1, x2, y2, stroke, width=None, dash=None):
        self.parts.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"'
                          + _attrs(stroke=stroke, stroke_width=width, stroke_dasharray=dash) + "/>")

    def rect(self, x, y, w, h, fill):
        self.parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}"'
                          + _attrs(fill=fill) + "/>")

    def circle(self, x, y, r, fill, stroke=None):
        self.parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}"' + _attrs(fill=fill, stroke=stroke) + "/>")

    def polyline(self, points, stroke, width=2):
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        self.parts.append(f'<polyline fill="none" points="{pts}"' + _attrs(stroke=stroke, stroke_width=width) + "/>")

    def text(self, x, y, s, anchor=None, fill=None, font_size=None, font_weight=None):
        self.parts.append(f'<text x="{x:.1f}" y="{y:.1f}"'
                          + _attrs(text_anchor=anchor, fill=fill, font_size=font_size, font_weight=font_weight)
                          + f">{escape(str(s))}</text>")

    def render(self):
        return "\n".join(self.parts + ["</svg>"]) + "\n"
