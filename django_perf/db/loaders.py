"""DataLoader-style batching: many ``load(key)`` calls in one event-loop tick, one query.

A loader is declared once (at module level, like a model manager) and keeps
its cache and queue in the current *loader scope*: a context variable set for
each request by :class:`LoaderScopeMiddleware`, or by ``with loader_scope():``
around any other unit of work. Results never outlive the scope, so they never
leak between requests or users. Code run in a copy of the context inherits
the scope (tasks, ``sync_to_async``, ``asyncio.to_thread``,
``contextvars.copy_context().run``); a plain ``threading.Thread`` or
``ThreadPoolExecutor`` does not copy context variables, so it has no scope.

``await loader.load(key)`` queues the key and returns a future's result; the
first load of a tick schedules a dispatch with ``loop.call_soon``, so every key
requested in the same tick goes to one call of the batch function (split into
chunks of ``max_batch_size``). WSGI code uses the sync form: ``prefetch(keys)``
or ``get_many(keys)`` (one query per chunk), then ``get(key)``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Generic, TypeVar

from asgiref.sync import async_to_sync, iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.db import connections, models
from django.db.models.lookups import Lookup

from .fields import is_native
from .postgres import cast_type

__all__ = [
    "Batcher",
    "LoaderScope",
    "LoaderScopeMiddleware",
    "ModelLoader",
    "loader_scope",
]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

BatchResult = Mapping[Any, Any] | Sequence[Any]
BatchFunction = Callable[[list[Any]], BatchResult | Awaitable[BatchResult]]
OnMissing = type[BaseException] | Callable[[Any], BaseException] | None


class _NotFound:
    def __repr__(self) -> str:
        return "NOT_FOUND"


NOT_FOUND: Any = _NotFound()


class _Pending:
    """The keys queued or in flight on one event loop, and the futures waiting for them."""

    __slots__ = ("loop", "queue", "scheduled", "waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiters: dict[Any, list[asyncio.Future]] = {}
        self.queue: list[Any] = []
        self.scheduled = False


class _State:
    """One loader's data within one scope: resolved values, and the pending loads.

    Values are plain objects and serve any event loop; the pending loads belong to
    the loop they were made on. A scope can outlive a loop (a WSGI view calling
    ``async_to_sync`` twice: each call runs its own loop), and a load queued on a
    loop that ended before the batch ran is never settled, so joining it would
    wait for ever. ``pending()`` therefore starts afresh on another (or closed) loop.
    """

    __slots__ = ("_pending", "values")

    def __init__(self) -> None:
        self.values: dict[Any, Any] = {}
        self._pending: _Pending | None = None

    def pending(self, loop: asyncio.AbstractEventLoop) -> _Pending:
        pending = self._pending
        if pending is None or pending.loop is not loop or pending.loop.is_closed():
            # Batches already dispatched keep their own _Pending and still settle it.
            pending = self._pending = _Pending(loop)
        return pending


class LoaderScope:
    """The loaders' data for one request (or other unit of work)."""

    def __init__(self) -> None:
        self.states: dict[Batcher, _State] = {}

    def state(self, loader: Batcher) -> _State:
        state = self.states.get(loader)
        if state is None:
            state = self.states[loader] = _State()
        return state

    def clear(self) -> None:
        self.states.clear()


_scope: ContextVar[LoaderScope | None] = ContextVar("django_perf_loader_scope", default=None)


@contextmanager
def loader_scope() -> Iterator[LoaderScope]:
    """Give loaders a fresh scope for the block (sync or async code); drop it afterwards."""
    scope = LoaderScope()
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)
        scope.clear()


class LoaderScopeMiddleware:
    """Open a loader scope around each request, so loaders cache per request (sync and async)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        with loader_scope():
            return self.get_response(request)

    async def __acall__(self, request: Any) -> Any:
        with loader_scope():
            return await self.get_response(request)


def _chunks(keys: list, size: int) -> Iterator[list]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


class Batcher(Generic[K, V]):
    """Coalesce loads of single keys into calls of ``batch_fn(keys)``.

    ``batch_fn`` (sync or async) takes a list of distinct keys and returns
    either a mapping key -> value (keys it leaves out are missing) or a
    sequence of values in the keys' order, where an exception instance fails
    just that key. Missing keys load as ``None``, or raise ``on_missing``: an
    exception class (raised with a message naming the key) or a callable
    ``key -> exception``. If ``batch_fn`` raises, every waiter of that batch
    gets the exception, and nothing of it is cached.

    ``cache=True`` keeps values for the rest of the scope, so a key is fetched
    once per request; with ``cache=False`` only loads of the same tick share a
    fetch.
    """

    def __init__(
        self,
        batch_fn: BatchFunction,
        *,
        max_batch_size: int = 1000,
        cache: bool = True,
        on_missing: OnMissing = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise ValueError(f"max_batch_size must be a positive integer, not {max_batch_size!r}")
        self.batch_fn = batch_fn
        self.max_batch_size = max_batch_size
        self.cache = cache
        self.on_missing = on_missing
        self.name = name or getattr(batch_fn, "__qualname__", type(self).__name__)
        self._is_async = inspect.iscoroutinefunction(batch_fn)
        self._async_fn = batch_fn if self._is_async else sync_to_async(batch_fn)
        self._sync_fn = async_to_sync(batch_fn) if self._is_async else batch_fn

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # --- keys and results -----------------------------------------------------------

    def normalize(self, key: Any) -> Any:
        """The key as the batch function sees it (ModelLoader converts it to the field's type)."""
        return key

    def _state(self) -> _State:
        scope = _scope.get()
        if scope is None:
            raise LookupError(
                f"{self!r} was used outside a loader scope. Add "
                "'django_perf.db.LoaderScopeMiddleware' to MIDDLEWARE, or wrap the code in "
                "'with django_perf.db.loader_scope():'."
            )
        return scope.state(self)

    def _resolve(self, key: Any, value: Any) -> Any:
        if value is NOT_FOUND:
            if self.on_missing is None:
                return None
            raise self._missing_error(key)
        if isinstance(value, BaseException):
            raise value
        return value

    def _missing_error(self, key: Any) -> BaseException:
        """The exception for a missing ``key``; if ``on_missing`` itself raises, that one.

        Never raises: a raising ``on_missing`` must fail only its key, not the batch
        task that settles the other keys' waiters.
        """
        on_missing = self.on_missing
        try:
            if isinstance(on_missing, type) and issubclass(on_missing, BaseException):
                return on_missing(f"{self.name}: nothing found for key {key!r}.")
            assert on_missing is not None
            error = on_missing(key)
        except Exception as raised:
            return raised
        if not isinstance(error, BaseException):
            return TypeError(
                f"{self.name}: on_missing returned {type(error).__name__} for key {key!r}; "
                "it must return an exception."
            )
        return error

    def _match(self, keys: list, result: Any) -> list:
        """The batch function's result as one value per key (NOT_FOUND where missing)."""
        if isinstance(result, Mapping):
            return [result.get(key, NOT_FOUND) for key in keys]
        if isinstance(result, str | bytes) or not isinstance(result, Sequence | Iterable):
            raise TypeError(
                f"{self.name} returned {type(result).__name__}; a batch function returns a "
                "mapping of key to value or a list of values in the keys' order."
            )
        values = list(result)
        if len(values) != len(keys):
            raise ValueError(
                f"{self.name} returned {len(values)} values for {len(keys)} keys; return one "
                "value per key, in the keys' order (or a mapping)."
            )
        return [NOT_FOUND if v is None and self.on_missing is not None else v for v in values]

    def _store(self, state: _State, keys: list, values: list) -> None:
        if self.cache:
            for key, value in zip(keys, values, strict=True):
                if not isinstance(value, BaseException):
                    state.values[key] = value

    # --- async form -------------------------------------------------------------------

    def load(self, key: K) -> asyncio.Future[V | None]:
        """The value for ``key`` (await it), fetched with the other keys loaded this tick.

        Returns a future rather than being a coroutine, so that ``asyncio.gather()``
        of many loads creates no task per key.
        """
        scope = _scope.get()
        state = scope.states.get(self) if scope is not None else None
        if state is None:
            state = self._state()
        key = self.normalize(key)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        values = state.values
        if key in values:
            self._settle(future, key, values[key])
            return future
        pending = state._pending
        if pending is None or pending.loop is not loop:  # a running loop is never closed
            pending = state.pending(loop)
        waiters = pending.waiters.get(key)
        if waiters is not None:  # queued or in flight already: wait for that fetch
            waiters.append(future)
            return future
        pending.waiters[key] = [future]
        pending.queue.append(key)
        if not pending.scheduled:
            pending.scheduled = True
            loop.call_soon(self._dispatch, state, pending)
        return future

    def load_many(self, keys: Iterable[K]) -> asyncio.Future[list[V | None]]:
        """Values for ``keys`` in their order (await it), in one batch with this tick's loads."""
        return asyncio.gather(*[self.load(key) for key in keys])

    def _settle(self, future: asyncio.Future, key: Any, value: Any) -> None:
        if future.done():  # the waiter was cancelled
            return
        if value is NOT_FOUND:
            if self.on_missing is None:
                future.set_result(None)
            else:
                future.set_exception(self._missing_error(key))
        elif isinstance(value, BaseException):
            future.set_exception(value)
        else:
            future.set_result(value)

    def _dispatch(self, state: _State, pending: _Pending) -> None:
        pending.scheduled = False
        keys, pending.queue = pending.queue, []
        for chunk in _chunks(keys, self.max_batch_size):
            pending.loop.create_task(self._run(state, pending, chunk))

    async def _run(self, state: _State, pending: _Pending, keys: list) -> None:
        outcome: list | BaseException
        try:
            outcome = self._match(keys, await self._async_fn(keys))
        except Exception as error:
            outcome = error
        except BaseException as cancelled:  # CancelledError: its waiters are cancelled too
            self._finish(state, pending, keys, cancelled)
            raise
        self._finish(state, pending, keys, outcome)

    def _finish(
        self, state: _State, pending: _Pending, keys: list, outcome: list | BaseException
    ) -> None:
        """Settle every waiter of ``keys``: with its key's value, or all with the error.

        Runs with no await, so no load can join these waiters while they are settled.
        Whatever goes wrong while settling, the ``finally`` leaves no future pending.
        """
        waiters = [(key, pending.waiters.pop(key, [])) for key in keys]
        failure = outcome if isinstance(outcome, BaseException) else None
        try:
            if not isinstance(outcome, BaseException):
                self._store(state, keys, outcome)
                for (key, futures), value in zip(waiters, outcome, strict=True):
                    if value is NOT_FOUND or isinstance(value, BaseException):
                        for future in futures:
                            self._settle(future, key, value)
                        continue
                    for future in futures:
                        if not future.done():  # else cancelled by its waiter
                            future.set_result(value)
        except Exception as error:
            failure = error
        finally:
            for _, futures in waiters:
                for future in futures:
                    if future.done():
                        continue
                    if isinstance(failure, Exception):
                        future.set_exception(failure)
                    else:  # cancelled, or interrupted by a BaseException
                        future.cancel()

    # --- sync form ----------------------------------------------------------------------

    def prime(self, key: K, value: V) -> None:
        """Put ``value`` in the scope's cache for ``key`` (e.g. an object you already have)."""
        self._state().values[self.normalize(key)] = value

    def clear(self, key: K | None = None) -> None:
        """Forget ``key`` (or every key) in the current scope, so the next load fetches again."""
        state = self._state()
        if key is None:
            state.values.clear()
        else:
            state.values.pop(self.normalize(key), None)

    def prefetch(self, keys: Iterable[K]) -> None:
        """Fetch the keys not cached yet, one query per ``max_batch_size`` keys (sync code)."""
        self.get_many(keys)

    def get_many(self, keys: Iterable[K]) -> list[V | None]:
        """Sync form of ``load_many``: cached values, the rest fetched in batches now."""
        state = self._state()
        keys = [self.normalize(key) for key in keys]
        fetched: dict[Any, Any] = {}
        wanted = list(dict.fromkeys(k for k in keys if k not in state.values))
        for chunk in _chunks(wanted, self.max_batch_size):
            values = self._match(chunk, self._sync_fn(chunk))
            self._store(state, chunk, values)
            fetched.update(zip(chunk, values, strict=True))
        return [
            self._resolve(key, state.values[key] if key in state.values else fetched[key])
            for key in keys
        ]

    def get(self, key: K) -> V | None:
        """Sync form of ``load``: the cached value, or one query for this key alone."""
        return self.get_many([key])[0]


class _EqualsAny(Lookup):
    """``column = ANY(%s::type[])``: one array parameter, whatever the number of keys."""

    lookup_name = "django_perf_any"
    prepare_rhs = False

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, tuple]:
        lhs_sql, lhs_params = self.process_lhs(compiler, connection)
        db_type = cast_type(self.lhs.output_field.db_type(connection))
        return f"{lhs_sql} = ANY(%s::{db_type}[])", (*lhs_params, list(self.rhs))


_KEY_TYPES: dict[str, type] = {
    **dict.fromkeys(
        ["AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField",
         "SmallIntegerField", "PositiveIntegerField", "PositiveBigIntegerField",
         "PositiveSmallIntegerField"],
        int,
    ),
    "CharField": str,
    "TextField": str,
    "SlugField": str,
    "EmailField": str,
}  # fmt: skip


def _loading(queryset: models.QuerySet, field: models.Field) -> models.QuerySet:
    """``queryset``, loading ``field`` even if ``only()``/``defer()`` left it out.

    Each row's key is read to match it to the keys asked for; a deferred key
    would cost one query per row to load.
    """
    names, deferring = queryset.query.deferred_loading
    if not deferring:  # only(...): add the key (only() replaces the names it had)
        return queryset.only(*names, field.name) if names else queryset
    if {field.name, field.attname} & set(names):
        return queryset.defer(None).defer(*(set(names) - {field.name, field.attname}))
    return queryset


class ModelLoader(Batcher[Any, Any]):
    """Load model instances by a field (the primary key by default), batched per tick.

    ``ModelLoader(Article)`` loads by primary key; ``ModelLoader(Comment,
    key="article", many=True)`` loads the list of comments of each article
    (``[]`` when there are none). Give a queryset to choose the database,
    ``select_related`` and the like. On PostgreSQL a batch is one ``WHERE key =
    ANY(%s)`` query (one parameter, however many keys); elsewhere ``key__in``.
    ``on_missing="raise"`` raises the model's ``DoesNotExist``.
    """

    def __init__(
        self,
        model_or_queryset: type[models.Model] | models.QuerySet,
        key: str = "pk",
        *,
        many: bool = False,
        max_batch_size: int = 1000,
        cache: bool = True,
        on_missing: OnMissing | str = None,
    ) -> None:
        if isinstance(model_or_queryset, models.QuerySet):
            queryset = model_or_queryset
        elif isinstance(model_or_queryset, type) and issubclass(model_or_queryset, models.Model):
            queryset = model_or_queryset._default_manager.all()
        else:
            raise TypeError(
                f"ModelLoader takes a model class or a queryset, not {model_or_queryset!r}."
            )
        model = queryset.model
        opts = model._meta
        field = opts.pk if key == "pk" else opts.get_field(key)
        if not field.concrete:
            raise ValueError(f"ModelLoader({model.__name__}): {key!r} is not a column.")
        if on_missing == "raise":
            on_missing = model.DoesNotExist
        elif isinstance(on_missing, str):
            raise ValueError(f"on_missing takes None, 'raise', or an exception; not {on_missing!r}")
        self.queryset = _loading(queryset, field)
        self.field = field
        self.many = many
        self._target = field.target_field if field.is_relation else field
        self._key_type = _KEY_TYPES.get(self._target.get_internal_type())
        super().__init__(
            self._fetch,
            max_batch_size=max_batch_size,
            cache=cache,
            on_missing=None if many else on_missing,
            name=f"ModelLoader({model.__name__}.{field.name})",
        )

    def normalize(self, key: Any) -> Any:
        if type(key) is self._key_type:
            return key  # already what to_python() would return
        if isinstance(key, models.Model) and self.field.is_relation:
            key = getattr(key, self._target.attname)
        try:
            value = self._target.to_python(key)
        except Exception as error:
            message = getattr(error, "messages", [str(error)])
            raise ValueError(f"{self.name}: {key!r} is not a valid key: {message[0]}") from None
        if value is None:
            raise ValueError(f"{self.name}: None is not a key.")
        return value

    def _fetch(self, keys: list) -> dict[Any, Any]:
        queryset = self.queryset.all()
        using = queryset.db
        attname = self.field.attname
        grouped: dict[Any, Any] = {key: [] for key in keys} if self.many else {}
        sent = self._storable(keys, using)
        if not sent:  # keys the column cannot hold are missing: no query at all
            return grouped
        if is_native(connections[using]):
            condition = _EqualsAny(models.F(attname), self._db_values(sent, using))
            queryset = queryset.filter(condition)
        else:
            queryset = queryset.filter(**{f"{attname}__in": sent})
        asked = set(sent)
        for obj in queryset:
            # A row can match a key it does not equal in Python (a case-insensitive
            # collation, say): it answers no key that was asked for, so skip it.
            key = getattr(obj, attname)
            if key not in asked:
                continue
            if self.many:
                grouped[key].append(obj)
            else:
                grouped[key] = obj
        return grouped

    def _storable(self, keys: list, using: str) -> list:
        """The keys the column can hold; the others cannot match a row.

        Sent anyway, an integer out of the column's range fails the whole batch:
        PostgreSQL raises DataError (aborting the enclosing transaction, e.g.
        ATOMIC_REQUESTS) and SQLite's driver OverflowError. So they are left out,
        and load as missing.
        """
        try:
            low, high = connections[using].ops.integer_field_range(self._target.get_internal_type())
        except KeyError:  # not an integer column
            return keys
        return [key for key in keys if not isinstance(key, int) or low <= key <= high]

    def _db_values(self, keys: list, using: str) -> list:
        connection = connections[using]
        return [self._target.get_db_prep_value(key, connection, prepared=True) for key in keys]
