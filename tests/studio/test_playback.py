"""Playback without a window: the clock moves the document's playhead in real time and stops at
the end; stepping and keyframe jumps stop it."""

from __future__ import annotations

from worldstudio.studio.document import ProjectDocument, Selection
from worldstudio.studio.playback import Playback


def test_playback_drives_the_playhead_of_a_document(demo_folder, qtbot):
    doc = ProjectDocument()
    doc.load(demo_folder)
    playback = Playback(doc)
    states = []
    playback.playing_changed.connect(states.append)
    last = doc.frame_count() - 1
    doc.set_playhead(last - 3)
    playback.play()
    assert playback.playing
    qtbot.waitUntil(lambda: not playback.playing, timeout=3000)
    assert doc.playhead == last and states == [True, False]

    playback.play()  # from the end, play starts again at 0
    assert doc.playhead == 0 and playback.playing
    playback.step(5)
    assert not playback.playing and doc.playhead == 5
    frames = sorted(set(doc.keyframe_frames()))
    playback.jump_keyframe(1)
    nxt = min(f for f in frames if f > 5)
    assert doc.playhead == nxt
    kf = doc.project.camera_path.keyframes[doc.keyframe_frames().index(nxt)]
    assert doc.selection == Selection("keyframe", kf.id)
    playback.jump_keyframe(-1)
    assert doc.playhead == max(f for f in frames if f < nxt)
    assert states == [True, False, True, False]
