"""The stop-string buffer the MLX and torch engines stream through: no part of a stop string is shown."""

from __future__ import annotations

from engines.prompts import StopBuffer, find_stop


def test_a_stop_string_split_across_pieces_is_never_shown():
    buffer = StopBuffer(["</s>", "\n\nUser:"])
    shown = [buffer.add(piece) for piece in ("The capital", " is Paris.\n", "\nUs", "er: next")]
    assert "".join(shown) == "The capital is Paris." and buffer.stopped
    assert all("\n" not in piece for piece in shown)  # the start of the stop string was held back
    assert buffer.add(" more text", final=True) == "" and not buffer.pending


def test_held_back_text_is_shown_at_the_end_and_no_stop_means_no_hold():
    buffer = StopBuffer(["STOP"])
    assert buffer.add("abcdef") == "abc" and buffer.pending  # the last 3 characters (len('STOP') - 1) wait
    assert buffer.add("gh", final=True) == "defgh" and not buffer.stopped and not buffer.pending
    plain = StopBuffer(["", ""])
    assert plain.add("every token at once") == "every token at once"


def test_find_stop_is_the_earliest_stop():
    assert find_stop("a STOP b END", ["END", "STOP"]) == 2
    assert find_stop("nothing here", ["END", ""]) is None
