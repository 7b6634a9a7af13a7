"""Networks: the models (``models``), network samplers, what ``model=`` means everywhere (``samplers``), fitting a
network by SGD (``fit``) and expert trajectories stored keyed on disk (``trajectories``)."""
