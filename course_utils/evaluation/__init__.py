"""How a set is scored: the named evaluation protocols (``protocol``), training and testing fresh networks
(``training``), choices made on validation data (``choice``), sets as a proxy for architecture search (``nas``) and
rank correlations (``ranking``)."""
