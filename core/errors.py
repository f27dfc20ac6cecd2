"""Errors a user can cause. Each message names what is wrong (file, field, step)."""


class WorldStudioError(Exception):
    """Base class for every error the CLI and the studio show as one clear line."""


class ProjectError(WorldStudioError):
    """A project folder or project.json that cannot be read, validated or written."""


class FormatError(WorldStudioError):
    """A file in an interchange format (PLY, mp4, LiveWorld, nerfstudio, bundle) that is malformed."""


class ActionStringError(WorldStudioError):
    """An action string with an invalid step."""


class Cancelled(Exception):
    """A job stopped because its cancel token was set. Not a :class:`WorldStudioError`: cancelling
    is not a failure, and code that handles errors must not treat it as one."""
