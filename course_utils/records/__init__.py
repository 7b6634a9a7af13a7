"""What outlives a run: JSON result records (``results``), checkpoints with their run's identity (``checkpoint``),
synthetic sets (``synthetic``) and the papers' reported numbers (``papers``, from ``papers.json``)."""
