"""Read side: projections and the views they keep."""
