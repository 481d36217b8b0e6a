"""The dashboard's action forms: what to invalidate, and the reset confirmation."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.apps import apps
from django.conf import settings

__all__ = ["KINDS", "TIERS", "InvalidateForm", "model_labels"]

KINDS = [
    ("key", "Keys"),
    ("pattern", "Key patterns"),
    ("tag", "Tags"),
    ("model", "A model's entries"),
]
TIERS = [("memory", "memory (L1)"), ("redis", "Redis (L2)"), ("database", "database (L3)")]
MAX_VALUES = 1000


def _cache_aliases() -> list[tuple[str, str]]:
    return [(alias, alias) for alias in settings.CACHES]


def _tier_choices() -> list[tuple[str, str]]:
    """The tiers the configured tiered caches have (from their ``stats()``), L1 first."""
    from django.core.cache import caches

    present: set[str] = set()
    for alias in settings.CACHES:
        stats = getattr(caches[alias], "stats", None)
        if callable(stats):
            try:
                present.update(stats())
            except Exception:  # a cache that cannot say: offer every tier
                return TIERS
    return [(kind, label) for kind, label in TIERS if kind in present] or TIERS


class InvalidateForm(forms.Form):
    """Arguments of ``django_perf.cache.invalidation.invalidate()``, checked before the call."""

    kind = forms.ChoiceField(choices=KINDS, initial="key", widget=forms.RadioSelect)
    values = forms.CharField(
        label="Keys, patterns or tags",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="One per line (or comma-separated). Patterns match keys with * and ?.",
    )
    model = forms.CharField(
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"list": "perf-models", "size": 30}),
        help_text="app_label.ModelName of a model registered for invalidation.",
    )
    pks = forms.CharField(
        label="Primary keys",
        required=False,
        max_length=10_000,
        widget=forms.TextInput(attrs={"size": 30}),
        help_text="Comma-separated. Empty: the entries of every row of the model.",
    )
    alias = forms.ChoiceField(label="Cache", choices=_cache_aliases, initial="default")
    tiers = forms.MultipleChoiceField(
        choices=_tier_choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None checked: every tier of the cache.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind = data.get("kind")
        values = [v for v in re.split(r"[\n,]", data.get("values", "")) if v.strip()]
        values = [v.strip() for v in values]
        if len(values) > MAX_VALUES:
            self.add_error("values", f"At most {MAX_VALUES} at a time.")
        if kind in ("key", "pattern", "tag") and not values:
            self.add_error("values", f"Give at least one {kind}.")
        data["value_list"] = values
        data["model_class"] = None
        data["pk_list"] = None
        if kind == "model":
            label = data.get("model", "").strip()
            if not label:
                self.add_error("model", "Name the model as app_label.ModelName.")
                return data
            try:
                model = apps.get_model(label)
            except (LookupError, ValueError):
                self.add_error("model", f"No installed model is called {label!r}.")
                return data
            data["model_class"] = model
            raw = [p.strip() for p in data.get("pks", "").split(",") if p.strip()]
            if raw:
                try:
                    data["pk_list"] = [model._meta.pk.to_python(p) for p in raw]
                except forms.ValidationError as error:
                    self.add_error("pks", f"Not a primary key of {label}: {error.messages[0]}")
        return data

    def invalidate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``invalidate()`` (after ``is_valid()``)."""
        data = self.cleaned_data
        kwargs: dict[str, Any] = {"alias": data["alias"], "tiers": data["tiers"] or None}
        kind = data["kind"]
        if kind == "model":
            kwargs["model"] = data["model_class"]
            kwargs["pks"] = data["pk_list"]
        else:
            kwargs[{"key": "keys", "pattern": "patterns", "tag": "tags"}[kind]] = tuple(
                data["value_list"]
            )
        return kwargs

    def describe(self) -> str:
        """What is being invalidated, for the confirmation, the report and the admin log."""
        data = self.cleaned_data
        kind = data["kind"]
        if kind == "model":
            model = data["model_class"]
            what = f"model {model._meta.label}"
            if data["pk_list"]:
                what += " rows " + ", ".join(str(pk) for pk in data["pk_list"])
        else:
            noun = {"key": "keys", "pattern": "patterns", "tag": "tags"}[kind]
            what = f"{noun} " + ", ".join(data["value_list"])
        tiers = ", ".join(data["tiers"]) if data["tiers"] else "every tier"
        return f"{what} in cache {data['alias']!r} ({tiers})"


def model_labels() -> list[str]:
    """``app_label.ModelName`` of the models registered for invalidation (the suggestions)."""
    from ..cache.invalidation import registry

    return sorted(model._meta.label for model in registry.models())
