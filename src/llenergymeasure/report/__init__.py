"""The HTML report of a study or run folder, and the inline SVG charts it is drawn with."""
