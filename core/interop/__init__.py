"""Files in and out: mp4, PLY exports, project bundles, LiveWorld samples, nerfstudio paths."""
