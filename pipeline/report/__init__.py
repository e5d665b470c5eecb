"""Report: pictures and summaries people look at (contact sheets of shots)."""
