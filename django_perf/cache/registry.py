"""The invalidation registry: which cache keys, tags and patterns each model's rows feed.

``register(Article, keys=..., tags=..., patterns=...)`` says, for a row, what
to drop when it changes. The registry listens to ``pre_save`` /
``post_save`` / ``pre_delete`` / ``post_delete`` (with the rows a delete
changes without a signal; only for the models that need them, so that the others
keep Django's fast delete) / ``m2m_changed`` (both sides of a relation)
and to ``django_perf.signals.rows_changed`` (the bulk write helpers), and
invalidates at once and again when the transaction commits: a reader that
fills the cache from the old row while the transaction is open cannot leave
that value behind. After a rollback the second pass never runs (Django has no rollback
hook: what the rolled-back transaction cached itself stays; see docs/invalidation.rst).
Raw saves (``loaddata``) are named and dropped once, on commit.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.exceptions import ValidationError
from django.db import connections, models, router, transaction
from django.db.models.signals import (
    class_prepared,
    m2m_changed,
    post_delete,
    post_save,
    pre_delete,
    pre_save,
)
from django.utils.module_loading import import_string

from django_perf.signals import rows_changed

from .engine import InvalidationReport, deletes_patterns, pattern_problem, run, tier_kinds
from .patterns import check_pattern, key_frame

__all__ = [
    "Registration",
    "RegistrationError",
    "Registry",
    "invalidate_instance",
    "invalidate_model",
    "register",
    "registry",
    "resolve_model",
]

Strings = Callable[[Any], "str | Iterable[str] | None"]
CHUNK = 1000  # rows fetched per query when invalidating by primary key
PREVIOUS = "_django_perf_cache_previous"  # instance attribute: what its stored row fed
CLEARED = "_django_perf_cache_cleared"  # instance attribute: related pks before an m2m clear
LOADING = "_django_perf_cache_loading"  # instance attribute: raw-saved, its transaction still open
DELETING = "_django_perf_cache_deleting"  # instance attribute: what its delete also changes
UID = "django_perf.cache.registry"

logger = logging.getLogger("django_perf.cache")


def _label(model: type[models.Model]) -> str:
    return model._meta.label


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


@dataclass
class Bundle:
    """What to invalidate in one cache: keys, tags and patterns."""

    keys: set[str] = field(default_factory=set)
    tags: set[str] = field(default_factory=set)
    patterns: set[str] = field(default_factory=set)

    def update(self, other: Bundle) -> None:
        self.keys |= other.keys
        self.tags |= other.tags
        self.patterns |= other.patterns

    def __bool__(self) -> bool:
        return bool(self.keys or self.tags or self.patterns)


Bundles = dict[str, Bundle]  # by cache alias


class RegistrationError(Exception):
    """A registration's callable failed for a row while ``invalidate(model=...)`` read it.

    Not a ValueError: the arguments were fine, the registered code is at fault.
    """


@dataclass(frozen=True)
class Registration:
    """One ``register()`` call: callables of an instance returning keys, tags and patterns."""

    model: type[models.Model]
    keys: Strings | None = None
    tags: Strings | None = None
    patterns: Strings | None = None
    alias: str = "default"
    previous: bool = True

    def __str__(self) -> str:
        parts = [
            f"{what}={_name(fn)}"
            for what, fn in (("keys", self.keys), ("tags", self.tags), ("patterns", self.patterns))
            if fn is not None
        ]
        alias = "" if self.alias == "default" else f", alias={self.alias!r}"
        return f"register({_label(self.model)}, {', '.join(parts)}{alias})"

    def describe(self) -> dict[str, Any]:
        """The registration as data (for the admin page and ``--json``)."""
        return {
            "model": _label(self.model),
            "alias": self.alias,
            "keys": None if self.keys is None else _name(self.keys),
            "tags": None if self.tags is None else _name(self.tags),
            "patterns": None if self.patterns is None else _name(self.patterns),
            "previous": self.previous,
        }

    def _strings(self, what: str, fn: Strings, instance: Any) -> Iterable[str]:
        value = fn(instance)
        if value is None:
            return ()
        if isinstance(value, str):
            items: Iterable[Any] = (value,)
        else:
            try:
                items = list(value)
            except TypeError:
                items = (value,)
        for item in items:
            if not isinstance(item, str) or not item:
                raise TypeError(
                    f"{self} returned {item!r} ({type(item).__name__}) among its {what} for "
                    f"{instance!r}; {what} callables must return a non-empty string or a "
                    "list of them (None for nothing)."
                )
            if what == "patterns":
                try:
                    check_pattern(item)
                except ValueError as error:
                    raise ValueError(f"{self} returned a bad pattern: {error}") from None
        return items

    def collect(self, instance: Any, bundle: Bundle) -> None:
        if self.keys is not None:
            bundle.keys.update(self._strings("keys", self.keys, instance))
        if self.tags is not None:
            bundle.tags.update(self._strings("tags", self.tags, instance))
        if self.patterns is not None:
            bundle.patterns.update(self._strings("patterns", self.patterns, instance))


@dataclass
class Found:
    """What the registrations of some rows name, for one cache alias."""

    keys: list[str] = field(default_factory=list)
    tags: set[str] = field(default_factory=set)
    patterns: list[str] = field(default_factory=list)
    rows: int = 0
    missing: list[Any] = field(default_factory=list)


# --- Checking registrations (errors raise where register() is called) ------------------------


def _check_model(model: Any) -> type[models.Model]:
    if isinstance(model, type) and issubclass(model, models.Model):
        return model
    if isinstance(model, models.Model):
        raise TypeError(
            f"register() takes a model class, not an instance: write "
            f"register({type(model).__name__}, ...), not register({model!r}, ...)."
        )
    raise TypeError(
        f"register() takes a model class as its first argument (e.g. register(Article, "
        f"keys=...)); got {model!r} ({type(model).__name__})."
    )


def _check_callable(model: type[models.Model], what: str, fn: Any) -> Any:
    if fn is None or callable(fn):
        return fn
    hint = {
        "keys": "keys=lambda obj: [f'article:{obj.pk}']",
        "tags": "tags=lambda obj: ['articles']",
        "patterns": "patterns=lambda obj: [f'article:{obj.pk}:*']",
    }[what]
    raise TypeError(
        f"register({_label(model)}, {what}=...) needs a callable that takes an instance and "
        f"returns strings; got {fn!r} ({type(fn).__name__}). Write e.g. {hint}."
    )


def _check_patterns(model: type[models.Model], alias: str, patterns: Any) -> None:
    """Refuse patterns= for a cache that cannot delete by pattern (else every save() fails)."""
    if patterns is None:
        return
    backend = settings.CACHES[alias].get("BACKEND", "")
    try:
        klass = import_string(backend)
    except ImportError:
        return  # Django reports a bad BACKEND itself when the cache is first used
    if not deletes_patterns(klass):
        raise ValueError(
            f"register({_label(model)}, patterns=..., alias={alias!r}): the cache {alias!r} "
            f"({backend}) cannot delete by pattern; use django_perf.cache.TieredCache or "
            "django-redis for it, or name the entries with keys= or tags= instead."
        )
    # The key format from the settings alone: building the cache itself here, at import
    # time, would connect to its servers.
    try:
        keys_like = BaseCache(settings.CACHES[alias])
    except Exception:
        return  # e.g. a KEY_FUNCTION that does not import: Django reports it on first use
    try:
        key_frame(keys_like)
    except ValueError as error:
        raise ValueError(
            f"register({_label(model)}, patterns=..., alias={alias!r}): {error}"
        ) from None


def _check_alias(alias: Any) -> str:
    if not isinstance(alias, str) or alias not in settings.CACHES:
        configured = ", ".join(repr(name) for name in settings.CACHES) or "none"
        raise ValueError(
            f"register(..., alias={alias!r}): no such cache in settings.CACHES; configured "
            f"aliases: {configured}."
        )
    return alias


# --- The registry --------------------------------------------------------------------------


class Registry:
    """Registrations by model; looked up for a model and everything it inherits from."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_model: dict[type[models.Model], list[Registration]] = {}
        self._resolved: dict[type, tuple[Registration, ...]] = {}
        self.connected = False

    def add(self, registration: Registration) -> Registration:
        with self._lock:
            self._by_model.setdefault(registration.model, []).append(registration)
            self._resolved = {}
        connect_model(registration.model)
        sync_delete_senders()
        return registration

    def remove(self, registration: Registration) -> None:
        """Forget one registration (tests; code that registers temporarily)."""
        with self._lock:
            found = self._by_model.get(registration.model, [])
            if registration in found:
                found.remove(registration)
            if not found:
                self._by_model.pop(registration.model, None)
            self._resolved = {}
        if not self._by_model.get(registration.model):
            disconnect_model(registration.model)
        sync_delete_senders()

    def for_model(self, model: type) -> tuple[Registration, ...]:
        """Registrations of ``model`` and of the models it inherits from (proxy, MTI, abstract)."""
        found = self._resolved.get(model)
        if found is None:
            by_model = self._by_model
            found = tuple(
                registration
                for klass in getattr(model, "__mro__", ())
                for registration in by_model.get(klass, ())
            )
            self._resolved[model] = found
        return found

    def models(self) -> list[type[models.Model]]:
        return list(self._by_model)

    def registrations(self) -> list[Registration]:
        return [r for found in self._by_model.values() for r in found]

    # What rows name -----------------------------------------------------------------------

    def bundles(
        self, instances: Iterable[Any], registrations: Sequence[Registration] | None = None
    ) -> Bundles:
        out: Bundles = {}
        for instance in instances:
            regs = self.for_model(type(instance)) if registrations is None else registrations
            for registration in regs:
                bundle = out.get(registration.alias)
                if bundle is None:
                    bundle = out[registration.alias] = Bundle()
                registration.collect(instance, bundle)
        return out

    def collect(self, model: type[models.Model], pks: Sequence[Any] | None, alias: str) -> Found:
        """What ``model``'s registrations for ``alias`` name for rows ``pks`` (None: every row)."""
        everything = self.for_model(model)
        regs = [r for r in everything if r.alias == alias]
        if not regs:
            if everything:
                aliases = ", ".join(sorted({repr(r.alias) for r in everything}))
                raise ValueError(
                    f"{_label(model)} is registered for the cache(s) {aliases}, not {alias!r}; "
                    "pass that alias."
                )
            raise ValueError(
                f"{_label(model)} has no invalidation registrations, so there is nothing to "
                f"derive from its rows. Register it (register({model.__name__}, keys=..., "
                "tags=...)) or pass keys, patterns or tags instead."
            )
        found = Found()
        bundle = Bundle()
        if pks is None:
            manager = model._base_manager.db_manager(router.db_for_read(model))
            for instance in manager.all().iterator(chunk_size=2000):
                found.rows += 1
                _collect_row(regs, instance, bundle)
        else:
            using = router.db_for_read(model)
            wanted = _to_pks(model, pks, using)
            seen = set()
            for instance in _rows(model, wanted, using):
                found.rows += 1
                seen.add(instance.pk)
                _collect_row(regs, instance, bundle)
            found.missing = [pk for pk in wanted if pk not in seen]
        found.keys = sorted(bundle.keys)
        found.tags = bundle.tags
        found.patterns = sorted(bundle.patterns)
        return found


registry = Registry()


def _collect_row(regs: Sequence[Registration], instance: Any, bundle: Bundle) -> None:
    for registration in regs:
        try:
            registration.collect(instance, bundle)
        except Exception as error:
            raise RegistrationError(
                f"{registration} failed for {_label(type(instance))} pk={instance.pk!r}: "
                f"{type(error).__name__}: {error}"
            ) from error


def _integer_range(model: type[models.Model], using: str) -> tuple[int, int] | None:
    """The integers the database can store in ``model``'s primary key (None: not an integer)."""
    field_ = model._meta.pk
    while field_.remote_field is not None:  # a parent link (multi-table inheritance)
        field_ = field_.target_field
    if not isinstance(field_, models.IntegerField):
        return None
    try:
        return connections[using].ops.integer_field_range(field_.get_internal_type())
    except KeyError:  # a custom integer type the backend does not list: let the query decide
        return None


def _to_pks(model: type[models.Model], pks: Sequence[Any], using: str) -> list[Any]:
    if isinstance(pks, str | bytes) or not isinstance(pks, Iterable):
        raise ValueError(f"pks must be a list of primary keys, e.g. pks=[1, 2]; got {pks!r}.")
    field_ = model._meta.pk
    # A query with an integer the database cannot hold fails in the driver (OverflowError on
    # SQLite, DataError on PostgreSQL) instead of finding nothing: refuse it here.
    bounds = _integer_range(model, using)
    out = []
    for pk in pks:
        try:
            value = field_.to_python(pk)
        except ValidationError as error:
            raise ValueError(
                f"{pk!r} is not a primary key of {_label(model)} ({field_.get_internal_type()}): "
                f"{' '.join(error.messages)}"
            ) from None
        if value is None:
            raise ValueError(f"None is not a primary key of {_label(model)}.")
        if bounds is not None:
            low, high = bounds
            if not low <= value <= high:
                raise ValueError(
                    f"{pk!r} is not a primary key of {_label(model)} "
                    f"({field_.get_internal_type()}): out of the range the database stores "
                    f"({bounds[0]} to {bounds[1]})."
                )
        out.append(value)
    return list(dict.fromkeys(out))


def _rows(model: type[models.Model], pks: Sequence[Any], using: str) -> Iterator[Any]:
    manager = model._base_manager.db_manager(using)
    for start in range(0, len(pks), CHUNK):
        yield from manager.filter(pk__in=pks[start : start + CHUNK])


def resolve_model(model: Any) -> type[models.Model]:
    """A model class from a class or ``"app_label.Model"``; ValueError / LookupError otherwise."""
    if isinstance(model, type) and issubclass(model, models.Model):
        return model
    if not isinstance(model, str):
        raise ValueError(
            f"model must be a model class or 'app_label.ModelName' (e.g. 'blog.Article'); "
            f"got {model!r} ({type(model).__name__})."
        )
    if model.count(".") != 1 or not all(model.split(".")):
        raise ValueError(
            f"model must be written 'app_label.ModelName' (e.g. 'blog.Article'); got {model!r}."
        )
    try:
        return apps.get_model(model)
    except LookupError as error:
        known = sorted(_label(m) for m in registry.models() if not m._meta.abstract)
        hint = f" Registered models: {', '.join(known)}." if known else ""
        raise LookupError(f"No installed model {model!r} ({error}).{hint}") from None


# --- Applying: at once, and again on commit ------------------------------------------------------


def apply(bundles: Bundles) -> None:
    """Invalidate ``bundles`` now (invalidation messages go out batched, within milliseconds)."""
    for alias, bundle in bundles.items():
        if not bundle:
            continue
        cache = caches[alias]
        patterns = sorted(bundle.patterns)
        problem = pattern_problem(cache, alias) if patterns else None
        if problem:
            # register() checked the cache, but settings can change since: the row is already
            # written, so raising here would fail a save that succeeded. Log, do the rest.
            logger.error(
                "The patterns %s of a registration were not invalidated: %s",
                ", ".join(patterns),
                problem,
            )
            patterns = []
        report = InvalidationReport(alias=alias)
        run(cache, report, tier_kinds(cache), sorted(bundle.keys), patterns, sorted(bundle.tags))


def schedule(bundles: Bundles, using: str | None) -> None:
    """Invalidate now and, inside a transaction, once more when it commits (never on rollback)."""
    if not any(bundles.values()):
        return
    apply(bundles)
    if using is None:
        return
    connection = transaction.get_connection(using)
    if connection.in_atomic_block:
        transaction.on_commit(lambda: apply(bundles), using=using, robust=True)


def invalidate_instance(instance: models.Model, *, using: str | None = None) -> None:
    """Invalidate what ``instance``'s registrations name (for changes made without ``save()``)."""
    if not isinstance(instance, models.Model):
        raise TypeError(
            f"invalidate_instance() takes a model instance; got {instance!r} "
            f"({type(instance).__name__}). For a model and primary keys, use invalidate_model()."
        )
    # The write alias, not ``_state.db``: an instance read from a replica names the replica,
    # which is never in the writer's transaction, so the on-commit pass would be lost.
    using = using or router.db_for_write(type(instance), instance=instance)
    schedule(registry.bundles([instance]), using)


def invalidate_model(
    model: Any, pks: Sequence[Any] | None = None, *, using: str | None = None
) -> int:
    """Invalidate what ``model``'s registrations name for rows ``pks`` (None: every row).

    For writes that bypass signals, such as ``QuerySet.update()``. Rows are
    read from ``using`` (by default the router's read database) and, inside
    ``atomic()`` on ``using`` (by default the router's write database), dropped
    again on commit; returns how many were found. Deleted rows cannot be read
    back: invalidate them before deleting, or name their keys.
    """
    model = resolve_model(model)
    regs = registry.for_model(model)
    if not regs:
        return 0
    read = using or router.db_for_read(model)
    # The second pass follows the writer's transaction: a replica is never in it.
    write = using or router.db_for_write(model)
    if pks is None:
        rows: Iterable[Any] = model._base_manager.db_manager(read).all().iterator(chunk_size=2000)
    else:
        rows = _rows(model, _to_pks(model, pks, read), read)
    count = 0
    batch: list[Any] = []
    for instance in rows:
        batch.append(instance)
        count += 1
        if len(batch) >= CHUNK:
            schedule(registry.bundles(batch, regs), write)
            batch = []
    if batch:
        schedule(registry.bundles(batch, regs), write)
    return count


# --- register() ------------------------------------------------------------------------------


def register(
    model: type[models.Model],
    *,
    keys: Strings | None = None,
    tags: Strings | None = None,
    patterns: Strings | None = None,
    alias: str = "default",
    previous: bool = True,
) -> Any:
    """Invalidate, when a row of ``model`` changes, what ``keys``, ``tags`` and ``patterns`` name.

    Each is a callable taking the instance and returning a string, a list of
    strings or None. A model may be registered many times; registrations of a
    parent (abstract, concrete or proxied) apply to its children.
    ``previous``: on an update, also invalidate what the row named before the
    change (one extra query per save, so that a changed slug drops the old
    slug's key); pass False when the names depend only on the primary key.

    Without ``keys``, ``tags`` and ``patterns`` it returns a decorator: a
    decorated function is registered as ``keys``; a decorated class is
    instantiated and its ``keys``, ``tags`` and ``patterns`` methods are used.
    """
    model = _check_model(model)
    alias = _check_alias(alias)
    if keys is None and tags is None and patterns is None:

        def decorator(target: Any) -> Any:
            if isinstance(target, type):
                helper = target()
                found = {what: getattr(helper, what, None) for what in ("keys", "tags", "patterns")}
                if not any(found.values()):
                    raise TypeError(
                        f"@register({_label(model)}) on the class {target.__qualname__} needs "
                        "at least one of the methods keys(self, obj), tags(self, obj), "
                        "patterns(self, obj)."
                    )
                for what, fn in found.items():
                    _check_callable(model, what, fn)
                _check_patterns(model, alias, found["patterns"])
                registry.add(Registration(model, alias=alias, previous=previous, **found))
            else:
                _check_callable(model, "keys", target)
                registry.add(Registration(model, keys=target, alias=alias, previous=previous))
            return target

        return decorator
    registration = Registration(
        model,
        keys=_check_callable(model, "keys", keys),
        tags=_check_callable(model, "tags", tags),
        patterns=_check_callable(model, "patterns", patterns),
        alias=alias,
        previous=previous,
    )
    _check_patterns(model, alias, patterns)
    return registry.add(registration)


# --- Signal receivers ----------------------------------------------------------------------------


def _pre_save(
    sender: Any, instance: Any, raw: bool = False, using: str | None = None, **kw: Any
) -> None:
    regs = [r for r in registry.for_model(sender) if r.previous]
    # Not ``_state.adding``: Model(pk=existing).save() and loaddata rows are "adding" too, yet
    # they UPDATE a stored row. A real insert finds nothing.
    if not regs or instance.pk is None:
        return
    stored = list(sender._base_manager.using(using).filter(pk=instance.pk)[:1])
    if not stored:
        return
    if raw:
        # loaddata: the callables may follow relations to rows not loaded yet; name later.
        instance.__dict__[PREVIOUS] = functools.partial(registry.bundles, stored, regs)
    else:
        instance.__dict__[PREVIOUS] = registry.bundles(stored, regs)


def _merged(bundles: Bundles, more: Bundles | None) -> Bundles:
    for alias, bundle in (more or {}).items():
        bundles.setdefault(alias, Bundle()).update(bundle)
    return bundles


def _post_save(
    sender: Any, instance: Any, raw: bool = False, using: str | None = None, **kw: Any
) -> None:
    previous = instance.__dict__.pop(PREVIOUS, None)
    regs = registry.for_model(sender)
    if not regs:
        return
    if raw:
        # loaddata saves rows in fixture order, so related rows may not exist yet (Django:
        # raw receivers must not query other rows). It runs in atomic(): name and drop once
        # every row is in, on commit. robust: a failing callable must not fail the others.
        # Its many-to-many is set next, with no raw flag: LOADING defers that too.
        instance.__dict__[LOADING] = True

        def on_commit() -> None:
            instance.__dict__.pop(LOADING, None)
            apply(_merged(registry.bundles([instance], regs), previous and previous()))

        transaction.on_commit(on_commit, using=using, robust=True)
        return
    schedule(_merged(registry.bundles([instance], regs), previous), using)


# on_delete handlers that leave related rows as they are, or delete them with their signals.
KEEPING = (models.CASCADE, models.PROTECT, models.RESTRICT, models.DO_NOTHING)


def _m2m_partners(m2m: Any, instance: Any, using: str, forward: bool) -> Any:
    """The rows related to ``instance`` through the many-to-many field ``m2m``, either side."""
    through = m2m.remote_field.through
    source, target = m2m.m2m_field_name(), m2m.m2m_reverse_field_name()
    if not forward:
        source, target = target, source
    other = m2m.remote_field.model if forward else m2m.model
    links = through._base_manager.using(using).filter(**{f"{source}__pk": instance.pk})
    return other, other._base_manager.using(using).filter(pk__in=links.values(f"{target}__pk"))


def _changed_without_signal(model: Any) -> Iterator[tuple[Any, Any]]:
    """(relation, other model) for each relation whose rows deleting ``model``'s rows changes
    without a signal.

    Its many-to-many, either side (Django deletes the through rows without ``m2m_changed``),
    and the foreign keys to it that are SET_NULL, SET_DEFAULT or SET() (an ``update()``).
    """
    concrete = model._meta.concrete_model
    # Local relations only: a parent's (multi-table inheritance) go with the parent's delete.
    for m2m in concrete._meta.local_many_to_many:
        yield m2m, m2m.remote_field.model
    for rel in concrete._meta.related_objects:
        if rel.model._meta.concrete_model is not concrete:
            continue
        if isinstance(rel.field, models.ManyToManyField) or (
            isinstance(rel.field, models.ForeignKey) and rel.on_delete not in KEEPING
        ):
            yield rel, rel.related_model


def _changed_by_delete(instance: Any, using: str) -> Iterator[tuple[Any, Any]]:
    """(model, rows) of registered models that deleting ``instance`` changes without a signal."""
    for relation, other in _changed_without_signal(type(instance)):
        if not registry.for_model(other):
            continue
        if isinstance(relation, models.ManyToManyField):
            yield _m2m_partners(relation, instance, using, forward=True)
        elif isinstance(relation.field, models.ManyToManyField):
            yield _m2m_partners(relation.field, instance, using, forward=False)
        else:
            manager = other._base_manager.using(using)
            yield other, manager.filter(**{relation.field.name: instance})


def _pre_delete(sender: Any, instance: Any, using: str | None = None, **kw: Any) -> None:
    """Note, while the relations still exist, what the row and the rows it changes name."""
    using = using or router.db_for_write(sender, instance=instance)
    previous = [r for r in registry.for_model(sender) if r.previous]
    bundles = registry.bundles([instance], previous) if previous else {}
    changed = []
    for model, rows in _changed_by_delete(instance, using):
        found = list(rows)
        if found:
            regs = [r for r in registry.for_model(model) if r.previous]
            _merged(bundles, registry.bundles(found, regs))
            changed.append((model, [row.pk for row in found]))
    if bundles or changed:
        instance.__dict__[DELETING] = (bundles, changed)


def _post_delete(sender: Any, instance: Any, using: str | None = None, **kw: Any) -> None:
    bundles, changed = instance.__dict__.pop(DELETING, ({}, []))
    regs = registry.for_model(sender)
    if regs:
        _merged(bundles, registry.bundles([instance], regs))
    for model, pks in changed:  # as they are now: unlinked, or pointing elsewhere
        rows = _rows(model, pks, using or router.db_for_write(model))
        _merged(bundles, registry.bundles(rows, registry.for_model(model)))
    schedule(bundles, using)


def _m2m_accessor(through: Any, instance_model: Any, reverse: bool) -> str | None:
    """The attribute of ``instance_model`` that manages the relation stored in ``through``."""
    for f in instance_model._meta.get_fields():
        if not f.many_to_many:
            continue
        if not reverse and not f.auto_created and f.remote_field.through is through:
            return f.name
        if reverse and f.auto_created and getattr(f, "through", None) is through:
            return f.get_accessor_name()
    return None


def _m2m_changed(
    sender: Any,
    instance: Any,
    action: str,
    reverse: bool,
    model: Any,
    pk_set: set[Any] | None,
    using: str | None = None,
    **kw: Any,
) -> None:
    if action == "pre_clear":
        # pk_set is None for a clear: note which rows were related, before they are not.
        if registry.for_model(model):
            accessor = _m2m_accessor(sender, type(instance), reverse)
            if accessor is not None:
                related = list(getattr(instance, accessor).values_list("pk", flat=True))
                instance.__dict__.setdefault(CLEARED, {})[sender] = related
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if action == "post_clear":
        pks: Any = instance.__dict__.get(CLEARED, {}).pop(sender, None)
    else:
        pks = pk_set
    if instance.__dict__.get(LOADING):
        # loaddata sets a fixture row's relations right after its raw save: the rows they
        # follow may not be loaded yet, so name and drop on commit, with the row's own keys.
        def on_commit() -> None:
            apply(_m2m_bundles(instance, model, pks, using))

        transaction.on_commit(on_commit, using=using, robust=True)
        return
    schedule(_m2m_bundles(instance, model, pks, using), using)


def _m2m_bundles(instance: Any, model: Any, pks: Any, using: str | None) -> Bundles:
    """What ``instance`` names, and what the related ``model`` rows ``pks`` name."""
    bundles: Bundles = {}
    own = registry.for_model(type(instance))
    if own:
        bundles = registry.bundles([instance], own)
    other = registry.for_model(model) if pks else ()
    if other:
        rows = list(_rows(model, list(pks), using or router.db_for_read(model)))
        _merged(bundles, registry.bundles(rows, other))
    return bundles


def _rows_changed(sender: Any, pks: Sequence[Any] = (), using: str | None = None, **kw: Any):
    regs = registry.for_model(sender)
    if not regs or not pks:
        return
    pks = list(pks)
    for start in range(0, len(pks), CHUNK):
        rows = list(_rows(sender, pks[start : start + CHUNK], using or "default"))
        schedule(registry.bundles(rows, regs), using)


def connect_model(model: type[models.Model]) -> None:
    """Listen to ``rows_changed`` for ``model`` and, once models are loaded, its subclasses.

    The bulk helpers only fetch written primary keys when someone listens for
    the model, so the registry listens per model, not for every sender.
    """
    if not registry.connected:
        return
    senders = [model] if not model._meta.abstract else []
    if apps.models_ready:
        senders = [m for m in apps.get_models() if issubclass(m, model)]
    for sender in senders:
        rows_changed.connect(_rows_changed, sender=sender, dispatch_uid=UID)


def disconnect_model(model: type[models.Model]) -> None:
    """Stop listening to ``rows_changed`` for ``model``'s senders that nothing else registers."""
    if apps.models_ready:
        senders = [m for m in apps.get_models() if issubclass(m, model)]
    else:
        senders = [model]
    for sender in senders:
        if not registry.for_model(sender):
            rows_changed.disconnect(_rows_changed, sender=sender, dispatch_uid=UID)


def connect() -> None:
    """Connect the registry to Django's model signals and to ``rows_changed``.

    Called by ``AppConfig.ready()``; registrations made before it (in models
    modules) are connected then, later ones as they are made.
    """
    pre_save.connect(_pre_save, dispatch_uid=UID)
    post_save.connect(_post_save, dispatch_uid=UID)
    m2m_changed.connect(_m2m_changed, dispatch_uid=UID)
    class_prepared.connect(_class_prepared, dispatch_uid=UID)
    registry.connected = True
    for model in registry.models():
        connect_model(model)
    sync_delete_senders()


# --- Delete signals: only for the models that need them -----------------------------------------
#
# A pre_delete or post_delete receiver for a model makes Django's Collector give up the fast
# delete (one DELETE ... WHERE) for it: it SELECTs every row and sends two signals per row.
# So the registry listens only where a delete can change what a registration names.

_delete_senders: set[type[models.Model]] = set()  # connected to _pre_delete / _post_delete
_delete_lock = threading.Lock()


def needs_delete_signals(model: type[models.Model]) -> bool:
    """Whether deleting ``model``'s rows can change what a registration names.

    Its own registrations (or a parent's: a proxy or a child is a sender of its own), or a
    registered model on the other side of a relation its delete changes without a signal.
    """
    if registry.for_model(model):
        return True
    return any(registry.for_model(other) for _, other in _changed_without_signal(model))


def _subclasses(model: type) -> Iterator[type]:
    for subclass in model.__subclasses__():
        yield subclass
        yield from _subclasses(subclass)


def _delete_candidates() -> set[type[models.Model]]:
    """Every installed model, and subclasses of registered ones defined elsewhere (isolate_apps)."""
    found = set(apps.get_models(include_auto_created=True))
    for model in registry.models():
        found.add(model)
        found.update(_subclasses(model))
    return {model for model in found if not model._meta.abstract}


def _delete_uid(model: type[models.Model]) -> str:
    return f"{UID}.delete.{model._meta.label_lower}"


def _listen_to_deletes(model: type[models.Model]) -> None:
    pre_delete.connect(_pre_delete, sender=model, dispatch_uid=_delete_uid(model))
    post_delete.connect(_post_delete, sender=model, dispatch_uid=_delete_uid(model))
    _delete_senders.add(model)


def sync_delete_senders() -> None:
    """Connect the delete receivers for exactly the models that need them, disconnect the rest.

    Runs when registrations change, once ``connect()`` has run (in ``AppConfig.ready()``,
    when every model is loaded), so registrations made earlier are counted then.
    """
    if not registry.connected:
        return
    with _delete_lock:
        wanted = {model for model in _delete_candidates() if needs_delete_signals(model)}
        for model in wanted - _delete_senders:
            _listen_to_deletes(model)
        for model in _delete_senders - wanted:
            pre_delete.disconnect(_pre_delete, sender=model, dispatch_uid=_delete_uid(model))
            post_delete.disconnect(_post_delete, sender=model, dispatch_uid=_delete_uid(model))
            _delete_senders.discard(model)


def _class_prepared(sender: type[models.Model], **kw: Any) -> None:
    """A model defined after ``connect()`` that inherits a registration: a sender of its own.

    Other models are counted at the next registration change (their relations may not be
    resolved yet); migrations' historical models never inherit a registration.
    """
    if sender._meta.abstract or not any(issubclass(sender, m) for m in registry.models()):
        return
    with _delete_lock:
        _listen_to_deletes(sender)
