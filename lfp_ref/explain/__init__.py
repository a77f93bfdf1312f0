"""Teaching: one LFP step layer by layer (``trace``), its figures (``plots``) and LRP input
relevance (``attribution``)."""
