"""From a photo to a world: image -> crop -> depth -> focal -> point cloud; entity masks and
tracking with SAM 2.1.

Modules (import them directly; this package imports nothing heavy):

- :mod:`worldstudio.core.reconstruct.image_io`: reading, checking, orienting, converting and cropping photos
- :mod:`worldstudio.core.reconstruct.focal`: the field of view (EXIF, model estimate, user, default)
- :mod:`worldstudio.core.reconstruct.depth`: Depth Anything V2 / Depth Pro, preprocessed by hand
- :mod:`worldstudio.core.reconstruct.new_project`: ``new_project_from_image`` and its job
- :mod:`worldstudio.core.reconstruct.segment`: SAM 2.1 masks from clicks/boxes, entities with 3D anchors
- :mod:`worldstudio.core.reconstruct.track`: ``track_masks`` through frames with the SAM 2.1 video model
"""
