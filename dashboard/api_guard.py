"""One-line messages for API callers: every event handler, and the routes Gradio serves, fail with our
words instead of a raw exception or an HTTP 500 traceback.

The browser never sends what `gradio_client` or curl can: `None` for a textbox, a frame without its
columns, an `fn_index` that does not exist. `guard_handlers(demo)` wraps each handler so a
LocalbenchError reaches the caller as its own message and anything else as one "unexpected error"
line (the traceback goes to the log at debug level); textbox inputs read `None` as empty text, as the
UI sends it. `guard_routes(app)` answers errors raised by Gradio's own routes the same way.
"""

from __future__ import annotations

import functools
import inspect
import logging

import gradio as gr

from core.errors import LocalbenchError

log = logging.getLogger("localbench.api")


def one_line(err: BaseException) -> str:
    """The message an API caller sees for `err`."""
    if isinstance(err, LocalbenchError):
        return str(err)
    text = str(err).strip().splitlines()
    return f"unexpected error: {type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def _translate(err: Exception, name: str) -> Exception:
    if isinstance(err, gr.Error):
        return err
    if not isinstance(err, LocalbenchError):
        log.debug("handler %s failed", name, exc_info=err)
    return gr.Error(one_line(err), print_exception=False)


def guarded(fn):
    """`fn` (plain, coroutine, generator or async generator) with its exceptions made one-line gr.Errors."""
    name = getattr(fn, "__name__", "handler")
    if inspect.isasyncgenfunction(fn):

        @functools.wraps(fn)
        async def agen(*args, **kwargs):
            try:
                async for item in fn(*args, **kwargs):
                    yield item
            except Exception as err:
                raise _translate(err, name) from None

        return agen
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as err:
                raise _translate(err, name) from None

        return gen
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def coro(*args, **kwargs):
            try:
                return await fn(*args, **kwargs)
            except Exception as err:
                raise _translate(err, name) from None

        return coro

    @functools.wraps(fn)
    def plain(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as err:
            raise _translate(err, name) from None

    return plain


def _none_as_empty(component) -> None:
    if getattr(component, "_localbench_none_as_empty", False):
        return
    original = component.preprocess
    component.preprocess = lambda payload: original("" if payload is None else payload)
    component._localbench_none_as_empty = True


def guard_handlers(demo: gr.Blocks) -> None:
    """Wrap every event handler of `demo` (call once, after all tabs are built)."""
    for block_fn in demo.fns.values():
        if block_fn.fn is not None and not getattr(block_fn.fn, "_localbench_guarded", False):
            block_fn.fn = guarded(block_fn.fn)
            block_fn.fn._localbench_guarded = True
        for component in block_fn.inputs:
            if isinstance(component, gr.Textbox):
                _none_as_empty(component)


def guard_routes(app) -> None:
    """Errors raised inside Gradio's routes of the mounted `app` become one-line JSON answers: an unknown
    `fn_index` is 404, anything else 500 with one line; neither prints a traceback."""
    from fastapi.responses import JSONResponse

    async def on_error(request, err: Exception):
        if isinstance(err, KeyError) and request.url.path.rstrip("/").endswith(("/queue/join", "/run/predict")):
            message = f"no API function with fn_index {err.args[0] if err.args else '?'} — see /gradio_api/info"
            return JSONResponse({"error": message}, status_code=404)
        log.warning("%s %s: %s", request.method, request.url.path, one_line(err))
        return JSONResponse({"error": one_line(err)}, status_code=500)

    app.add_exception_handler(KeyError, on_error)
    app.add_exception_handler(Exception, on_error)
