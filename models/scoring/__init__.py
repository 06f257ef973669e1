"""How good a reconstruction is: the paper's normalised error (:mod:`.metrics`) and the baselines a
decoder is judged against (:mod:`.baselines`). Imports models.data."""
