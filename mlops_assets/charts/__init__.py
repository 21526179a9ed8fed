"""Charts written as SVG text, without a plotting library's layout and rasterizer.

Why: a chart whose geometry is a regular grid (the drift heatmap: one cell a feature and
week, each with its number) costs matplotlib most of a second to lay out and rasterize,
about a quarter of a region's ``drift_report`` on rossmann-100, for shapes whose
positions are plain arithmetic. Richer plots (lines, legends, dates) stay in ``reports``.
"""
