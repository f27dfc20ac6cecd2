"""How the process runs: its CPU thread policy (:mod:`.threads`) and the multi-process launches
of the commands that use several GPUs (:mod:`.launch`)."""
