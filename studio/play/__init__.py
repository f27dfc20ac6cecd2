"""Play mode in the studio: the world generated live from the keys (:mod:`.mode`), shown in the
play view (:mod:`.view`)."""

from worldstudio.studio.play.mode import PlayMode
from worldstudio.studio.play.view import PLAY_KEYS, PlayView

__all__ = ["PLAY_KEYS", "PlayMode", "PlayView"]
