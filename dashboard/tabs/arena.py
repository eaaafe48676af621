"""Arena tab: a private blind arena over a pool of (engine, model) entries, and its leaderboard.

Each round draws two entries and shows them as A and B, the side chosen by a coin and logged. Speed is
blinded: both answers are generated in full and revealed together, so streaming speed cannot give an
engine away; names and statistics appear only after the vote. Votes go to arena.db beside the results
store, keyed by a per-round vote_id, so a double click counts once. The board is bench.answers.ratings's
Bradley–Terry fit with 95 % intervals; `answer_via_pool` is the tab's only contact with the engines.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path

import altair as alt
import gradio as gr
import pandas as pd

from bench.answers.arena import Round, draw, play, vote_of
from bench.answers.entry import Entry, engine_answer, make_pool
from bench.answers.ratings import board_report, leaderboard_frame
from bench.answers.votes import VoteStore
from core.errors import BadParameter, LocalbenchError
from dashboard.context import AppContext
from dashboard.pickers import entry_picker, load_config, with_entry
from dashboard.ui import as_int, csv_file, session_of, stats_markdown, warn

HIDDEN = "Names and speed are shown after your vote."
VOTES = [("A better", "a"), ("B better", "b"), ("Tie", "tie"), ("Both bad", "both_bad")]
WINNER_TEXT = {code: text for text, code in VOTES}


def answer_via_pool(ctx: AppContext, prompt: str, entry: Entry, max_tokens: int, n_ctx, cancel: threading.Event):
    """One full answer (text, GenerationStats) from `entry` through the app's engine pool."""
    engine = ctx.pool.get(entry.engine, entry.model, load_config(ctx, entry.engine, n_ctx))
    return engine_answer(engine, prompt, entry, max_tokens, cancel)


def board_chart(frame: pd.DataFrame) -> alt.Chart:
    """Rating per entry with its 95 % interval (derived from the votes); groups that never met are coloured apart."""
    order = list(frame["model"])
    base = alt.Chart(frame).encode(y=alt.Y("model:N", sort=order, title=None, axis=alt.Axis(labelLimit=400)))
    rules = base.mark_rule().encode(
        x=alt.X("ci_low:Q", title="rating (Elo scale, mean 1000) with 95 % interval", scale=alt.Scale(zero=False)),
        x2="ci_high:Q",
    )
    points = base.mark_point(filled=True, size=80).encode(
        x="rating:Q", tooltip=["model", "group", "rank", "rating", "ci_low", "ci_high", "n_votes"]
    )
    if frame["group"].nunique() > 1:  # groups that never met share no scale: tell them apart
        points = points.encode(color=alt.Color("group:N", title="group (never met)"))
    return (rules + points).properties(width=640)


def board_tables(votes) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """(note, board, separation pairs) for a non-empty list of votes (bench.answers.ratings.board_report):
    groups that never met are ranked apart and said so, and only pairs that can be compared get "votes
    needed"."""
    report = board_report(votes)
    notes = [f"**{n}**" if n == report.groups_note else n for n in report.notes]
    return "<br>".join(notes), leaderboard_frame(report.rows), report.separations


def pool_markdown(entries: list[Entry]) -> str:
    if not entries:
        return "Pool: empty — add at least two entries."
    try:
        labels = [e.label for e in make_pool(entries)]
    except BadParameter:
        labels = [e.label or f"{e.model} · {e.engine}" for e in entries]
    return "Pool: " + " | ".join(f"`{x}`" for x in labels) + ("" if len(labels) > 1 else " — add one more.")


def build(ctx: AppContext) -> None:
    store = VoteStore(Path(ctx.store.path).with_name("arena.db"))
    rng = random.SystemRandom()

    def board_view():
        votes = store.triples()
        if not votes:
            empty = leaderboard_frame([])
            return "No votes yet.", empty, None, pd.DataFrame(), None
        note, frame, seps = board_tables(votes)
        return note, frame, board_chart(frame), seps, csv_file(frame, "localbench-arena")

    gr.Markdown(
        "Blind arena: two entries from your pool answer the same prompt; both answers appear together, "
        "so speed does not give an engine away. Vote, then see who was who."
    )
    engine, model, temperature, seed, add, clear_pool = entry_picker(ctx, "arena", "Add to pool", "Clear pool")
    pool_state = gr.State([])
    pool_md = gr.Markdown(pool_markdown([]), elem_id="arena-pool")
    with gr.Row():
        prompt = gr.Textbox(label="Prompt", scale=4, elem_id="arena-prompt")
        max_tokens = gr.Number(value=128, precision=0, label="Max tokens", scale=1, elem_id="arena-max-tokens")
        n_ctx = gr.Number(value=ctx.config.num_ctx, precision=0, label="Context (tokens)", scale=1)
    with gr.Row():
        send = gr.Button("Send to A and B", variant="primary", elem_id="arena-send")
        stop = gr.Button("Stop", variant="stop", elem_id="arena-stop")
    status = gr.Markdown("", elem_id="arena-status")
    round_state = gr.State(None)
    answers, reveals = [], []
    with gr.Row():
        for side in ("A", "B"):
            with gr.Column():
                answers.append(
                    gr.Textbox(
                        label=f"Model {side}", lines=8, interactive=False, elem_id=f"arena-answer-{side.lower()}"
                    )
                )
                reveals.append(gr.Markdown("", elem_id=f"arena-reveal-{side.lower()}"))
    with gr.Row():
        vote_buttons = [gr.Button(text, interactive=False, elem_id=f"arena-vote-{w}") for text, w in VOTES]
    with gr.Row():
        regenerate = gr.Button("Regenerate", elem_id="arena-regen")
        new_round = gr.Button("New round", elem_id="arena-new")

    gr.Markdown("### Leaderboard")
    refresh = gr.Button("Refresh", elem_id="arena-refresh")
    board_note = gr.Markdown(lambda: board_view()[0], elem_id="arena-board-note")
    board = gr.Dataframe(lambda: board_view()[1], interactive=False, elem_id="arena-board")
    chart = gr.Plot(elem_id="arena-chart")
    separation = gr.Dataframe(interactive=False, label="Votes needed to separate (derived)", elem_id="arena-sep")
    board_csv = gr.DownloadButton("Download leaderboard CSV", elem_id="arena-csv")

    def add_entry(engine_name, model_name, temp, seed_value, entries):
        entries = with_entry(entries, engine_name, model_name, temp, seed_value)
        return entries, pool_markdown(entries)

    def votes_locked(locked: bool):
        return [gr.update(interactive=not locked) for _ in vote_buttons]

    def generate(round_: Round, text: str, max_toks, ctx_tokens, request: gr.Request):
        """Shared by Send (a fresh pair) and Regenerate (the same pair): buffer both, reveal together."""
        cancel = ctx.new_cancel(session_of(request), "arena")
        yield "Generating both answers — hidden until both are ready…", None, "", "", HIDDEN, "", *votes_locked(True)
        try:
            limit = as_int(max_toks, "max tokens", 1)
            played = play(round_, text, lambda p, e: answer_via_pool(ctx, p, e, limit, ctx_tokens, cancel))
        except LocalbenchError as err:
            yield warn(err), None, "", "", "", "", *votes_locked(True)
            return
        yield (
            "Both answers are in. Which is better?",
            played,
            played.answer_a,
            played.answer_b,
            HIDDEN,
            "",
            *(votes_locked(False)),
        )

    def send_round(entries, text, max_toks, ctx_tokens, request: gr.Request):
        try:
            if not (text or "").strip():
                raise BadParameter("the prompt is empty — type something for both models to answer")
            round_ = draw(make_pool(entries), rng)
        except LocalbenchError as err:
            yield warn(err), None, "", "", "", "", *votes_locked(True)
            return
        yield from generate(round_, text, max_toks, ctx_tokens, request)

    def regenerate_round(round_, max_toks, ctx_tokens, request: gr.Request):
        if round_ is None or not round_.prompt:
            message = warn(BadParameter("nothing to regenerate — send a prompt first"))
            yield message, *[gr.skip()] * (len(round_outputs) - 1)
            return
        yield from generate(round_, round_.prompt, max_toks, ctx_tokens, request)

    def cast(winner: str):
        def handler(round_: Round):
            try:
                if round_ is None:
                    raise BadParameter("nothing to vote on yet — send a prompt first")
                vote = vote_of(round_, winner)
            except LocalbenchError as err:
                return warn(err), gr.update(), gr.update(), *votes_locked(True), *board_view()
            added = store.add([vote])
            said = "counted" if added else "already counted (one vote per round)"
            reveal = [
                f"**{side} was {e.label}**<br>" + stats_markdown(s)
                for side, e, s in (("A", round_.a, round_.stats_a), ("B", round_.b, round_.stats_b))
            ]
            return f"Vote {said}: {WINNER_TEXT[winner]}.", *reveal, *votes_locked(True), *board_view()

        return handler

    def stop_round(request: gr.Request):
        ctx.cancel(session_of(request), "arena")

    def clear_round():
        return "New round: type a prompt and send.", None, "", "", "", "", *votes_locked(True)

    board_outputs = [board_note, board, chart, separation, board_csv]
    round_outputs = [status, round_state, *answers, *reveals, *vote_buttons]
    add.click(add_entry, [engine, model, temperature, seed, pool_state], [pool_state, pool_md])
    clear_pool.click(lambda: ([], pool_markdown([])), None, [pool_state, pool_md])
    send.click(send_round, [pool_state, prompt, max_tokens, n_ctx], round_outputs, concurrency_id="generate")
    regenerate.click(regenerate_round, [round_state, max_tokens, n_ctx], round_outputs, concurrency_id="generate")
    stop.click(stop_round, None, None, queue=False)
    new_round.click(clear_round, None, round_outputs)
    for button, (_, code) in zip(vote_buttons, VOTES, strict=True):
        button.click(cast(code), round_state, [status, *reveals, *vote_buttons, *board_outputs])
    refresh.click(board_view, None, board_outputs)
