"""Files in and out: PLY, path and run-video exports, project bundles, LiveWorld samples, nerfstudio
paths (video encoding itself is :mod:`worldstudio.core.media`)."""
