"""From photo folders to training samples: reading and cropping photos (:mod:`.images`), features and
targets of a batch (:mod:`.encoders`), the sharded feature cache (:mod:`.cache`) and building it here
or on Dask (:mod:`.extract`). ``sample/`` holds the bundled photos. Imports models.networks."""
