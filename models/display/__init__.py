"""What a person looks at: labelled image grids (:mod:`.figures`), line plots (:mod:`.plot`) and the
terminal progress bar (:mod:`.progress`). Imports models.data (image resizing)."""
