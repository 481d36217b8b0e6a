"""``.. django-perf-settings::`` renders the settings reference from ``django_perf.conf.SETTINGS``.

The docs cannot drift from the code: a key added to SETTINGS appears here, with
its default, what it accepts and its help text.
"""

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective


def settings_rst() -> list[str]:
    """The reference as reStructuredText lines, one section per capability."""
    from django_perf.conf import SETTINGS

    lines: list[str] = []
    section = None
    for spec in SETTINGS:
        if spec.section != section:
            section = spec.section
            lines += [section, "-" * len(section), ""]
        title = f"``{spec.name}``"
        lines += [
            f".. _setting-{spec.name}:",
            "",
            title,
            "~" * len(title),
            "",
            f"Default: ``{spec.default!r}``. Accepts {spec.expected}.",
            "",
            spec.help,
            "",
        ]
    return lines


class PerfSettingsDirective(SphinxDirective):
    has_content = False

    def run(self) -> list[nodes.Node]:
        holder = nodes.section()
        holder.document = self.state.document
        content = StringList(settings_rst(), source="django_perf.conf.SETTINGS")
        self.state.nested_parse(content, 0, holder, match_titles=True)
        return list(holder.children)


def setup(app):
    app.add_directive("django-perf-settings", PerfSettingsDirective)
    return {"version": "1", "parallel_read_safe": True}
